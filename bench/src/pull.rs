//! A cold pull of a 200 MiB image of 8 gzip layers from a local registry
//! (Debian's docker-registry on 127.0.0.1): rind vs containerd
//! (`ctr image pull --plain-http`, which unpacks too), interleaved, medians;
//! and rindd's peak RSS during its pulls (a new rindd for each, so VmHWM is
//! the pull's).

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use rind_tests::containerd::Containerd;
use rind_tests::daemon::Daemon;
use rind_tests::registry::Registry;
use sha2::Digest as _;

use crate::median;

const LAYERS: usize = 8;
const LAYER_MIB: usize = 25;

fn hwm_kib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()))
        .unwrap_or(f64::NAN)
}

fn sha(data: &[u8]) -> String {
    format!("sha256:{:x}", sha2::Sha256::digest(data))
}

/// An OCI layout with one image of LAYERS layers of incompressible bytes.
fn write_layout(dir: &Path) -> anyhow::Result<()> {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs)?;
    let put = |data: &[u8]| -> anyhow::Result<(String, usize)> {
        let d = sha(data);
        std::fs::write(blobs.join(&d[7..]), data)?;
        Ok((d, data.len()))
    };
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let (mut layers, mut diff_ids) = (Vec::new(), Vec::new());
    for i in 0..LAYERS {
        let mut data = vec![0u8; LAYER_MIB << 20];
        for chunk in data.chunks_mut(8) {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            chunk.copy_from_slice(&seed.to_le_bytes()[..chunk.len()]);
        }
        let tar = rind_tests::image::Layer::of_files(&[(&format!("data{i}"), &data)]).blob;
        diff_ids.push(sha(&tar));
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar)?;
        layers.push(put(&gz.finish()?)?);
    }
    let config =
        serde_json::json!({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": diff_ids}, "config": {}});
    let config = put(&serde_json::to_vec(&config)?)?;
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config.0, "size": config.1},
        "layers": layers.iter().map(|(d, s)| serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": s})).collect::<Vec<_>>(),
    });
    let manifest = put(&serde_json::to_vec(&manifest)?)?;
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest.0, "size": manifest.1,
        "annotations": {"org.opencontainers.image.ref.name": "v1"}}]});
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index)?)?;
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    Ok(())
}

pub fn bench(runs: usize) -> anyhow::Result<()> {
    rind_tests::require_root();
    let reg = Registry::plain();
    let layout = tempfile::tempdir()?;
    write_layout(layout.path())?;
    let image = format!("{}/big:v1", reg.addr());
    reg.push_oci_layout(layout.path(), "v1", "big:v1");
    let mut d = Daemon::start();
    let ctrd = Containerd::start();
    println!("pull bench: cold pull of {image} ({LAYERS} gzip layers of {LAYER_MIB} MiB), x{runs}, interleaved");
    let (mut rind, mut ctr, mut peaks) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        // Cold: a fresh rindd with nothing of the image (rmi collects its blobs and layers).
        let _ = d.rind(&["rmi", &image]);
        d.kill9();
        d.spawn();
        let t = Instant::now();
        d.ok(&["pull", "-q", &image]);
        rind.push(t.elapsed().as_secs_f64() * 1000.0);
        peaks.push(hwm_kib(d.child.as_ref().map(|c| c.id()).unwrap_or(0)));
        let _ = ctrd.ctr(&["image", "rm", "--sync", &image]);
        let t = Instant::now();
        ctrd.ctr_ok(&["image", "pull", "--plain-http", &image]);
        ctr.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let (mr, mc) = (median(&rind), median(&ctr));
    println!("{:<44} {:>10} {:>10}", "cold pull, 200 MiB in 8 layers", "median ms", "ratio");
    println!("{:<44} {:>10.0} {:>10.2}", "rind pull (rindd)", mr, mr / mc);
    println!("{:<44} {:>10.0} {:>10.2}", "ctr image pull --plain-http (containerd)", mc, 1.0);
    println!(
        "rindd peak RSS during a pull (VmHWM of a fresh rindd): median {:.0} KiB, max {:.0} KiB",
        median(&peaks),
        peaks.iter().cloned().fold(0.0, f64::max)
    );
    Ok(())
}
