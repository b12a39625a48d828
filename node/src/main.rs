//! The `huijiao` binary. Everything lives in the library; see `huijiao::cli`.

// mimalloc: ingest allocates millions of small strings; glibc's malloc spent a
// quarter of the ingest profile in malloc/free bookkeeping.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    huijiao::cli::main()
}
