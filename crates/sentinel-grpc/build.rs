//! Compiles proto/sentinel.proto with protox (a protobuf compiler in Rust), so building needs no
//! `protoc` on the machine, then generates the prost messages and the tonic server and client.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/sentinel.proto");
    let fds = protox::compile(["proto/sentinel.proto"], ["proto"])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(fds)?;
    Ok(())
}
