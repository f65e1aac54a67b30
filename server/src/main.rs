fn main() {
    println!("server: not built yet");
}
