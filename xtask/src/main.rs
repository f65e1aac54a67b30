//! `cargo xtask`: the image of this repository's service, built, measured and
//! proved. `cargo xtask --help` lists the commands.

fn main() -> std::process::ExitCode {
    // The repository is found from here: the directory above this crate.
    server_image::main(env!("CARGO_MANIFEST_DIR"))
}
