//! IPv4 subnets as docker's `network create` reads them (pure).

use std::net::Ipv4Addr;

use super::NetworkError;

/// An IPv4 CIDR: its network address and prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub addr: Ipv4Addr,
    pub len: u32,
}

impl Cidr {
    /// `a.b.c.d/len`, host bits clear; `what` names the flag in errors.
    pub fn parse(s: &str, what: &str) -> Result<Cidr, NetworkError> {
        let bad = |reason: &str| NetworkError::Invalid(format!("invalid {what} {s:?}: {reason}"));
        let (addr, len) = s.split_once('/').ok_or_else(|| bad("needs a prefix length, as in 172.20.0.0/16"))?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| bad("is not an IPv4 address"))?;
        let len: u32 = len.parse().ok().filter(|l| (8..=30).contains(l)).ok_or_else(|| bad("the prefix length must be from 8 to 30"))?;
        let c = Cidr { addr, len };
        if u32::from(addr) & !c.mask() != 0 {
            return Err(bad("has host bits set"));
        }
        Ok(c)
    }

    fn mask(&self) -> u32 {
        u32::MAX << (32 - self.len)
    }

    pub fn first(&self) -> u32 {
        u32::from(self.addr)
    }

    pub fn last(&self) -> u32 {
        self.first() | !self.mask()
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        (self.first()..=self.last()).contains(&u32::from(ip))
    }

    pub fn overlaps(&self, other: &Cidr) -> bool {
        self.first() <= other.last() && other.first() <= self.last()
    }

    /// The first host address: docker's default gateway.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.first() + 1)
    }

    /// The usable addresses, without the network and broadcast addresses.
    pub fn hosts(&self) -> (Ipv4Addr, Ipv4Addr) {
        (Ipv4Addr::from(self.first() + 1), Ipv4Addr::from(self.last() - 1))
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// The first /24 of 172.31.0.0/16 that overlaps none of `taken`: the
/// subnet of a network created without `--subnet`.
pub fn pick(taken: &[Cidr]) -> Result<Cidr, NetworkError> {
    (0..=255u32)
        .map(|n| Cidr { addr: Ipv4Addr::new(172, 31, n as u8, 0), len: 24 })
        .find(|c| !taken.iter().any(|t| t.overlaps(c)))
        .ok_or_else(|| NetworkError::Invalid("no free subnet left in 172.31.0.0/16: give one with --subnet".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> Cidr {
        Cidr::parse(s, "subnet").unwrap()
    }

    #[test]
    fn parse_contains_overlaps() {
        let s = c("10.1.0.0/16");
        assert_eq!((s.gateway().to_string(), s.to_string()), ("10.1.0.1".into(), "10.1.0.0/16".into()));
        assert!(s.contains("10.1.255.254".parse().unwrap()) && !s.contains("10.2.0.1".parse().unwrap()));
        assert!(s.overlaps(&c("10.1.4.0/24")) && c("10.1.4.0/24").overlaps(&s) && !s.overlaps(&c("10.2.0.0/16")));
        assert_eq!(c("10.1.4.0/24").hosts(), ("10.1.4.1".parse().unwrap(), "10.1.4.254".parse().unwrap()));
        for (bad, want) in [("10.0.0.0", "prefix length"), ("10.0.0.1/24", "host bits"), ("x/24", "IPv4"), ("10.0.0.0/31", "from 8 to 30")]
        {
            let e = Cidr::parse(bad, "subnet").unwrap_err().to_string();
            assert!(e.contains(want) && e.contains("invalid subnet"), "{bad}: {e}");
        }
    }

    #[test]
    fn picks_the_first_free_slash_24() {
        assert_eq!(pick(&[]).unwrap(), c("172.31.0.0/24"));
        assert_eq!(pick(&[c("172.31.0.0/24"), c("172.31.1.0/25")]).unwrap(), c("172.31.2.0/24"));
        assert!(pick(&[c("172.31.0.0/16")]).is_err());
    }
}
