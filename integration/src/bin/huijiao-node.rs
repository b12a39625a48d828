//! The huijiao CLI built inside the integration package, so that its multi-process
//! tests can spawn real node processes (`CARGO_BIN_EXE_huijiao-node`). Same code as
//! the `huijiao` binary: both only call `huijiao::cli::main`.

fn main() -> std::process::ExitCode {
    huijiao::cli::main()
}

// The same allocator as the huijiao binary (see node/src/main.rs).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
