fn main() {
    tonic_prost_build::configure()
        .compile_protos(&["proto/rind.proto"], &["proto"])
        .expect("compile proto/rind.proto (is protoc installed? apt-get install protobuf-compiler)");
}
