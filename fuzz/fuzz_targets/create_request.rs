//! rind's API inputs: a `CreateContainerRequest` decoded from the bytes as
//! gRPC would, through rindd's real handler (api/rind.rs: the request to a
//! container config, then services::containers::create: name, restart
//! policy, stop signal, security options, user names through the image's
//! passwd, the OCI spec of services/spec.rs, the container's files and row)
//! against images loaded once. The first byte picks one of those images
//! (or keeps the request's). Invariants: a container rindd creates has a
//! spec rind-runtime accepts and plans without error, and it can be removed,
//! leaving nothing; a refused create leaves nothing.

#![no_main]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use libfuzzer_sys::fuzz_target;
use oci_spec::runtime::Spec;
use prost::Message;
use rind_api::v1::rind_server::Rind;
use rind_api::v1::CreateContainerRequest;
use rind_fuzz::cgroups::plan;
use rind_fuzz::commands::create;
use rind_fuzz::harness::{tar_of, Sandbox};
use rind_fuzz::process::{namespaces, seccomp};
use rindd::api::rind::RindApi;
use rindd::content::{ContentStore, Digest};
use rindd::images::Limits;
use rindd::registry::hosts::Hosts;
use rindd::registry::pull::Puller;
use rindd::services::containers::{self, Containers, Paths};
use rindd::services::images;
use rindd::shims::ShimBinary;
use rindd::store::Store;

const IMAGES: &[(&str, &str)] = &[
    ("fuzz:plain", r#""Cmd":["sh"],"Env":["PATH=/bin","A=1"],"Labels":{"l":"1"}"#),
    (
        "fuzz:user",
        r#""Entrypoint":["/bin/app"],"Cmd":["--x"],"User":"web:staff","WorkingDir":"/home/web","Volumes":{"/data":{}},"StopSignal":"SIGQUIT""#,
    ),
    ("fuzz:empty", r#""Env":["X=1"]"#),
];

struct Daemon {
    sandbox: Sandbox,
    api: RindApi,
    containers: Arc<Containers>,
    rt: tokio::runtime::Runtime,
    _kicks: Mutex<tokio::sync::mpsc::UnboundedReceiver<containers::Kick>>,
}

fn archive() -> Vec<u8> {
    let layer = tar_of(&[
        ("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\nweb:x:1000:1000::/home/web:/bin/sh\n"),
        ("etc/group", b"root:x:0:\nstaff:x:50:\n"),
    ]);
    let diff = Digest::of(&layer);
    let mut files: Vec<(String, Vec<u8>)> = vec![("layer.tar".into(), layer)];
    let mut manifest = Vec::new();
    for (i, (name, config)) in IMAGES.iter().enumerate() {
        let cfg =
            format!(r#"{{"architecture":"amd64","os":"linux","config":{{{config}}},"rootfs":{{"type":"layers","diff_ids":["{diff}"]}}}}"#);
        files.push((format!("c{i}.json"), cfg.into_bytes()));
        manifest.push(format!(r#"{{"Config":"c{i}.json","RepoTags":["{name}"],"Layers":["layer.tar"]}}"#));
    }
    files.push(("manifest.json".into(), format!("[{}]", manifest.join(",")).into_bytes()));
    tar_of(&files.iter().map(|(n, d)| (n.as_str(), d.as_slice())).collect::<Vec<_>>())
}

fn daemon() -> &'static Daemon {
    static D: OnceLock<Daemon> = OnceLock::new();
    D.get_or_init(|| {
        let sandbox = Sandbox::new();
        let root = sandbox.work.join("root");
        let state = sandbox.work.join("state");
        let content = Arc::new(ContentStore::open(&root.join("content")).expect("content store"));
        let store = Arc::new(Mutex::new(Store::open(&root.join("meta.db")).expect("store")));
        images::load(&root, &content, &store, &archive()[..], &Limits::default()).expect("load the images");
        // create never runs a shim: one that is not there makes sure of it.
        let shim = Arc::new(ShimBinary {
            path: PathBuf::from("/nonexistent/shim"),
            events: state.join("events.sock"),
            runtime: None,
            state: state.clone(),
        });
        let paths = Paths { root: root.clone(), state };
        let (containers, kicks) = Containers::new(paths, store.clone(), content.clone(), shim);
        // create pulls nothing: a puller with no registry configured.
        let hosts = Arc::new(Hosts::new(BTreeMap::new(), None));
        let puller = Arc::new(Puller::new(root.clone(), content.clone(), store.clone(), hosts, Limits::default(), 1));
        let api = RindApi {
            root,
            content,
            store,
            containers: containers.clone(),
            runtime: "rind-runtime".into(),
            limits: Limits::default(),
            puller,
        };
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
        Daemon { sandbox, api, containers, rt, _kicks: Mutex::new(kicks) }
    })
}

/// What rind-runtime does with the spec before it makes anything.
fn runtime_accepts(spec: &Spec) {
    create::validate(spec).expect("rind-runtime refuses the spec rindd made");
    let linux = spec.linux().as_ref().expect("validated");
    namespaces::plan(linux.namespaces().as_deref().unwrap_or(&[])).expect("namespaces");
    if let Some(s) = linux.seccomp() {
        seccomp::build(s).expect("seccomp filter");
    }
    if let Some(r) = linux.resources() {
        plan::plan_v1(r).expect("cgroup v1 plan");
        plan::plan_v2(r).expect("cgroup v2 plan");
    }
    plan::device_rules(linux.resources().as_ref()).expect("device rules");
    // A CFS quota the kernel takes (kernel/sched/core.c): 1 ms to 2^44-1 µs.
    if let Some(q) = linux.resources().as_ref().and_then(|r| r.cpu().as_ref()).and_then(|c| c.quota()) {
        assert!((1_000..(1 << 44)).contains(&q), "cpu quota {q} the kernel refuses or ignores");
    }
    for m in spec.mounts().iter().flatten() {
        assert!(m.destination().is_absolute(), "mount destination {:?} is not absolute", m.destination());
    }
}

fn entries(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|r| r.count()).unwrap_or(0)
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else { return };
    let Ok(mut req) = CreateContainerRequest::decode(rest) else { return };
    if let Some((name, _)) = IMAGES.get(usize::from(pick)) {
        req.image = name.to_string();
    }
    let d = daemon();
    let created = d.rt.block_on(d.api.create_container(tonic::Request::new(req)));
    if let Ok(resp) = created {
        let id = resp.into_inner().id;
        let row = d.containers.get(&id).expect("the created container");
        let spec: Spec = serde_json::from_str(&row.spec).expect("the stored spec reads back");
        let _: containers::Config = serde_json::from_str(&row.config).expect("the stored config reads back");
        runtime_accepts(&spec);
        d.rt.block_on(d.containers.remove(&id, false)).expect("remove the created container");
    }
    assert!(d.containers.list().expect("list").is_empty(), "a container is left");
    assert_eq!(entries(&d.api.root.join("containers")), 0, "a container's files are left");
    d.sandbox.assert_contained();
});
