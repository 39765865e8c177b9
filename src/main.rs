fn main() -> std::process::ExitCode {
    precisiond::cli::main()
}
