//! The shim's command line as containerd passes it: Go-style single-dash
//! flags (`-namespace ns -id x -address a start`), which clap does not parse.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ArgsError {
    #[error("flag {0} needs a value")]
    MissingValue(String),
    #[error("unknown flag {0}")]
    Unknown(String),
    #[error("-id is required")]
    NoId,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Args {
    pub namespace: String,
    pub id: String,
    pub address: String,
    pub publish_binary: String,
    pub bundle: Option<PathBuf>,
    pub debug: bool,
    /// "start", "delete", or None to serve.
    pub action: Option<String>,
}

pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Args, ArgsError> {
    let mut a = Args { namespace: "default".into(), ..Default::default() };
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        let Some(flag) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
            a.action = Some(arg);
            continue;
        };
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (flag.to_string(), None),
        };
        if name == "debug" || name == "v" {
            a.debug = inline.as_deref() != Some("false");
            continue;
        }
        let mut value = || inline.clone().or_else(|| it.next()).ok_or_else(|| ArgsError::MissingValue(arg.clone()));
        match name.as_str() {
            "namespace" => a.namespace = value()?,
            "id" => a.id = value()?,
            "address" => a.address = value()?,
            "publish-binary" => a.publish_binary = value()?,
            "bundle" => a.bundle = Some(PathBuf::from(value()?)),
            "socket" | "containerd-binary" => {
                value()?;
            }
            _ => return Err(ArgsError::Unknown(arg)),
        }
    }
    if a.id.is_empty() && a.action.as_deref() != Some("version") {
        return Err(ArgsError::NoId);
    }
    Ok(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn parse_containerd_start_line() {
        let a =
            parse(v("-namespace k8s.io -address /run/containerd/containerd.sock -publish-binary /usr/bin/containerd -id abc -debug start"))
                .unwrap();
        assert_eq!(a.namespace, "k8s.io");
        assert_eq!(a.id, "abc");
        assert!(a.debug);
        assert_eq!(a.action.as_deref(), Some("start"));
    }

    #[test]
    fn parse_bundle_inline_and_errors() {
        let a = parse(v("-id=x -bundle=/b delete")).unwrap();
        assert_eq!(a.bundle, Some(PathBuf::from("/b")));
        assert_eq!(a.action.as_deref(), Some("delete"));
        assert_eq!(parse(v("-id")), Err(ArgsError::MissingValue("-id".into())));
        assert_eq!(parse(v("-bogus 1 -id x")), Err(ArgsError::Unknown("-bogus".into())));
        assert_eq!(parse(v("start")), Err(ArgsError::NoId));
    }
}
