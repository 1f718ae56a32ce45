fn main() {
    eprintln!("clb-controller: not implemented yet");
    std::process::exit(2);
}
