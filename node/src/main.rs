//! The `huijiao` binary. Everything lives in the library; see `huijiao::cli`.

fn main() -> std::process::ExitCode {
    huijiao::cli::main()
}
