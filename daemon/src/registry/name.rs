//! Docker's image names: `busybox` is `docker.io/library/busybox:latest`,
//! and is shown (and stored) again as `busybox:latest`.

use oci_client::Reference;

use super::RegistryError;

pub const DOCKER_HUB: &str = "docker.io";

/// Parses and normalises a name; a name with neither tag nor digest gets `latest`.
pub fn parse(name: &str) -> Result<Reference, RegistryError> {
    let bad = |reason: String| RegistryError::Reference { reference: name.to_string(), reason };
    if name.is_empty() {
        return Err(bad("empty".into()));
    }
    if name.chars().any(|c| c.is_ascii_uppercase()) && !name.contains('@') && !name.contains(':') {
        return Err(bad("repository name must be lowercase".into()));
    }
    Reference::try_from(name).map_err(|e| bad(e.to_string()))
}

/// The name docker shows: without `docker.io/` and `library/`.
pub fn familiar(r: &Reference) -> String {
    let repo = if r.registry() == DOCKER_HUB || r.registry() == "index.docker.io" {
        // Docker drops `library/` only for one-part names, and `docker.io/`
        // only when what is left cannot be read as another registry.
        let path = r.repository();
        let short = path.strip_prefix("library/").filter(|rest| !rest.contains('/')).unwrap_or(path);
        let first = short.split('/').next().unwrap_or("");
        if short.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost") {
            format!("{DOCKER_HUB}/{short}")
        } else {
            short.to_string()
        }
    } else {
        format!("{}/{}", r.registry(), r.repository())
    };
    match (r.tag(), r.digest()) {
        (Some(t), _) => format!("{repo}:{t}"),
        (None, Some(d)) => format!("{repo}@{d}"),
        (None, None) => format!("{repo}:latest"),
    }
}

/// `r`'s repository with `digest` (docker's RepoDigest: `busybox@sha256:…`).
pub fn familiar_with_digest(r: &Reference, digest: &str) -> String {
    familiar(&Reference::with_digest(r.registry().to_string(), r.repository().to_string(), digest.to_string()))
}

/// The repository part docker prints in "Pulling from library/busybox".
pub fn path(r: &Reference) -> &str {
    r.repository()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_digests_keep_the_repository_and_drop_the_tag() {
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(familiar_with_digest(&parse("busybox:1.36").unwrap(), &d), format!("busybox@{d}"));
        assert_eq!(familiar_with_digest(&parse("127.0.0.1:5000/a/b:v1").unwrap(), &d), format!("127.0.0.1:5000/a/b@{d}"));
    }

    #[test]
    fn docker_names_normalise_and_shorten_again() {
        let cases = [
            ("busybox", "docker.io", "library/busybox", "busybox:latest"),
            ("busybox:1.36", "docker.io", "library/busybox", "busybox:1.36"),
            ("library/busybox", "docker.io", "library/busybox", "busybox:latest"),
            ("docker.io/library/busybox:latest", "docker.io", "library/busybox", "busybox:latest"),
            ("someone/app:v1", "docker.io", "someone/app", "someone/app:v1"),
            ("127.0.0.1:5000/app:v2", "127.0.0.1:5000", "app", "127.0.0.1:5000/app:v2"),
            ("localhost/a/b", "localhost", "a/b", "localhost/a/b:latest"),
        ];
        for (name, registry, repo, short) in cases {
            let r = parse(name).unwrap();
            assert_eq!((r.registry(), r.repository(), familiar(&r).as_str()), (registry, repo, short), "{name}");
        }
        // Shortened names must mean the same image again (found by fuzz/api_names).
        for name in ["docker.io/library/a/b", "docker.io/li.io/x", "docker.io/localhost/x"] {
            let r = parse(name).unwrap();
            let again = parse(&familiar(&r)).unwrap();
            assert_eq!((again.registry(), again.repository()), (r.registry(), r.repository()), "{name}");
        }
        let d = format!("sha256:{}", "a".repeat(64));
        let r = parse(&format!("busybox@{d}")).unwrap();
        assert_eq!((r.digest(), familiar(&r)), (Some(d.as_str()), format!("busybox@{d}")));
    }

    #[test]
    fn bad_names_are_refused_with_the_name() {
        for bad in ["", "Busybox", "a b", "busybox@sha256:short", "x::y"] {
            let e = parse(bad).unwrap_err().to_string();
            assert!(e.contains(&format!("{bad:?}")), "{e}");
        }
    }
}
