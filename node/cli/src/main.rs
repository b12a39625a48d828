//! The `huijiao` binary: the command line (`cli`) over the daemon library (`huijiao`)
//! and, for `huijiao demo` only, the test kit (`huijiao_kit`).

mod cli;
mod demo;
mod office;

// mimalloc: ingest allocates millions of small strings; glibc's malloc spent a
// quarter of the ingest profile in malloc/free bookkeeping.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    cli::main()
}
