//! The image verbs: `images` (`image ls`), `rmi` (`image rm`), `tag`
//! (`image tag`) and `image inspect`. `load`, `save`, `history` and
//! `image prune` have their own files.

use std::time::SystemTime;

use rind_api::v1::rind_client::RindClient;
use rind_api::v1::{Image, InspectImageRequest, ListImagesRequest, RemoveImageRequest, TagImageRequest};
use tonic::transport::Channel;

use super::inspect::print_inspect;
use crate::{format, status};

#[derive(clap::Args, Debug)]
pub struct ImagesFlags {
    /// Show all images (rind keeps no intermediate images: the same list)
    #[arg(short, long)]
    pub all: bool,
    /// Only image ids
    #[arg(short, long)]
    pub quiet: bool,
    /// Show digests
    #[arg(long)]
    pub digests: bool,
    /// Don't truncate output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// dangling=true|false, reference=PATTERN (e.g. 'busybox:*')
    #[arg(short, long)]
    pub filter: Vec<String>,
    /// json, or a template such as '{{.Repository}}:{{.Tag}}'
    #[arg(long)]
    pub format: Option<String>,
    /// Only images of this repository (and tag)
    pub reference: Option<String>,
}

/// One line of docker's `images`: an image under one repository and tag.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Row {
    repository: String,
    tag: String,
    digest: String,
    id: String,
    created: String,
    size: u64,
}

/// The name docker shows: `docker.io/library/busybox` is `busybox`,
/// `docker.io/someone/app` is `someone/app`.
fn familiar(repo: &str) -> &str {
    match repo.strip_prefix("docker.io/").or_else(|| repo.strip_prefix("index.docker.io/")) {
        Some(rest) => match rest.strip_prefix("library/") {
            Some(short) if !short.contains('/') => short,
            _ => rest,
        },
        None => repo,
    }
}

/// `NAME:TAG` → (NAME, TAG); `NAME@DIGEST` → (NAME, DIGEST). A `:` in the
/// registry's port is not a tag.
fn split(name: &str, at: char) -> (&str, &str) {
    match name.rsplit_once(at) {
        Some((repo, rest)) if !rest.contains('/') => (repo, rest),
        _ => (name, ""),
    }
}

/// docker's rows for an image (its `imageFormat`): one per tag (per tag and
/// digest of its repository with `digests`), one per repository known only
/// by digest, `<none>` for a dangling image.
fn rows_of(img: &Image, digests: bool) -> Vec<Row> {
    let row = |repository: &str, tag: &str, digest: &str| Row {
        repository: familiar(repository).to_string(),
        tag: tag.to_string(),
        digest: digest.to_string(),
        id: img.config_digest.clone(),
        created: img.image_created.clone(),
        size: img.size,
    };
    let mut by_digest: Vec<(&str, &str)> = img.repo_digests.iter().map(|d| split(d, '@')).collect();
    let mut out = Vec::new();
    let mut tags: Vec<(&str, &str)> = img.repo_tags.iter().map(|t| split(t, ':')).collect();
    tags.sort();
    for (repo, tag) in &tags {
        let of_repo: Vec<&str> = by_digest.iter().filter(|(r, _)| familiar(r) == familiar(repo)).map(|(_, d)| *d).collect();
        if !digests || of_repo.is_empty() {
            out.push(row(repo, tag, "<none>"));
        } else {
            out.extend(of_repo.iter().map(|d| row(repo, tag, d)));
        }
    }
    // Digests of a repository with a tag are on its tag's rows.
    by_digest.retain(|(r, _)| !tags.iter().any(|(t, _)| familiar(t) == familiar(r)));
    by_digest.sort();
    let mut shown: Vec<&str> = Vec::new();
    for (repo, d) in by_digest {
        if digests {
            out.push(row(repo, "<none>", d));
        } else if !shown.contains(&repo) {
            shown.push(repo);
            out.push(row(repo, "<none>", "<none>"));
        }
    }
    if out.is_empty() {
        out.push(row("<none>", "<none>", "<none>"));
    }
    out
}

fn short_id(id: &str, no_trunc: bool) -> String {
    if no_trunc {
        id.to_string()
    } else {
        id.trim_start_matches("sha256:").chars().take(12).collect()
    }
}

pub async fn images(c: &mut RindClient<Channel>, f: ImagesFlags) -> anyhow::Result<i32> {
    let mut filters = f.filter.clone();
    if let Some(r) = &f.reference {
        filters.push(format!("reference={r}"));
    }
    let r = c.list_images(ListImagesRequest { filters }).await.map_err(status)?.into_inner();
    let rows: Vec<Row> = r.images.iter().flat_map(|i| rows_of(i, f.digests)).collect();
    if f.quiet {
        for row in &rows {
            println!("{}", short_id(&row.id, f.no_trunc));
        }
        return Ok(0);
    }
    let now = SystemTime::now();
    if let Some(template) = &f.format {
        for row in &rows {
            let v = serde_json::json!({
                "Repository": row.repository, "Tag": row.tag, "Digest": row.digest, "ID": short_id(&row.id, f.no_trunc),
                "CreatedSince": format::since(&row.created, now), "CreatedAt": row.created, "Size": format::human_size(row.size, 3),
            });
            if template == "json" {
                println!("{v}");
            } else {
                println!("{}", format::render(template, &v));
            }
        }
        return Ok(0);
    }
    let mut table = vec![Vec::new()];
    table[0].extend(["REPOSITORY", "TAG"].map(String::from));
    if f.digests {
        table[0].push("DIGEST".into());
    }
    table[0].extend(["IMAGE ID", "CREATED", "SIZE"].map(String::from));
    for row in rows {
        let mut line = vec![row.repository, row.tag];
        if f.digests {
            line.push(row.digest);
        }
        line.extend([short_id(&row.id, f.no_trunc), format::since(&row.created, now), format::human_size(row.size, 3)]);
        table.push(line);
    }
    print!("{}", format::table(&table));
    Ok(0)
}

/// Each image in turn, as docker does: one that fails is reported and the
/// others are still removed; the exit code says whether any failed.
pub async fn rmi(c: &mut RindClient<Channel>, names: Vec<String>, force: bool) -> anyhow::Result<i32> {
    let mut code = 0;
    for name in names {
        match c.remove_image(RemoveImageRequest { name: name.clone(), force }).await {
            Ok(_) => println!("Untagged: {name}"),
            Err(e) => {
                eprintln!("error: {}", status(e));
                code = 1;
            }
        }
    }
    Ok(code)
}

pub async fn tag(c: &mut RindClient<Channel>, source: String, target: String) -> anyhow::Result<i32> {
    c.tag_image(TagImageRequest { source, target }).await.map_err(status)?;
    Ok(0)
}

pub async fn inspect(c: &mut RindClient<Channel>, format: Option<&str>, images: Vec<String>) -> anyhow::Result<i32> {
    for name in images {
        let r = c.inspect_image(InspectImageRequest { name }).await.map_err(status)?.into_inner();
        print_inspect(&r.json, format)?;
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(tags: &[&str], digests: &[&str]) -> Image {
        Image {
            config_digest: format!("sha256:{}", "ab".repeat(32)),
            repo_tags: tags.iter().map(|s| s.to_string()).collect(),
            repo_digests: digests.iter().map(|s| s.to_string()).collect(),
            size: 4_261_114,
            ..Default::default()
        }
    }

    fn cells(rows: &[Row]) -> Vec<(&str, &str, &str)> {
        rows.iter().map(|r| (r.repository.as_str(), r.tag.as_str(), r.digest.as_str())).collect()
    }

    #[test]
    fn a_row_per_tag_with_familiar_names() {
        let img = image(&["mine:1", "docker.io/library/busybox:latest", "127.0.0.1:5000/app:v2"], &[]);
        assert_eq!(
            cells(&rows_of(&img, false)),
            [("127.0.0.1:5000/app", "v2", "<none>"), ("busybox", "latest", "<none>"), ("mine", "1", "<none>")]
        );
    }

    #[test]
    fn digests_join_their_repositorys_tags_or_stand_alone() {
        let d = format!("sha256:{}", "cd".repeat(32));
        let img = image(&["busybox:latest"], &[&format!("busybox@{d}"), &format!("other@{d}")]);
        assert_eq!(cells(&rows_of(&img, false)), [("busybox", "latest", "<none>"), ("other", "<none>", "<none>")]);
        assert_eq!(cells(&rows_of(&img, true)), [("busybox", "latest", d.as_str()), ("other", "<none>", d.as_str())]);
    }

    #[test]
    fn a_dangling_image_is_none_none() {
        assert_eq!(cells(&rows_of(&image(&[], &[]), true)), [("<none>", "<none>", "<none>")]);
    }

    #[test]
    fn ids_are_12_hex_digits_unless_untruncated() {
        let id = format!("sha256:{}", "ab".repeat(32));
        assert_eq!(short_id(&id, false), "abababababab");
        assert_eq!(short_id(&id, true), id);
    }
}
