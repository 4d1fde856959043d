//! `gatehouse-extract <content-type> <memory-bytes> <cpu-seconds>`: extracts the text of
//! the content on stdin to stdout, within the limits given; the child process of
//! [`gatehouse_adapter_search::sandbox::Sandbox`] (`gatehouse` runs itself for this).

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    gatehouse_adapter_search::sandbox::child_main(&args)
}
