//! The address policy behind Herald's SSRF guard: which IP addresses a webhook may reach.
//!
//! A webhook URL is chosen by a tenant, but the request leaves from Herald's network. Without
//! this check a tenant could aim Herald at loopback services, the private network or the cloud
//! metadata endpoint (which hands out instance credentials) and read the answers back from the
//! delivery log. So every address a target resolves to is classified here, and only addresses
//! that pass are connected to (see [`super::client`] for how the check is pinned to the
//! connection, so DNS rebinding cannot swap the address afterwards).
//!
//! IPv6 forms that embed an IPv4 address (IPv4-mapped `::ffff:a.b.c.d`, IPv4-compatible
//! `::a.b.c.d`) are normalised to that IPv4 address first: the reason names the embedded
//! address's own class, and the allow-list is matched against it. Such forms are refused even
//! when the embedded address is public — a real receiver publishes its IPv4 address as such.
//! Translation and tunnelling prefixes (NAT64, 6to4, Teredo) are refused outright, as the real
//! destination is hidden inside them, and so is everything outside global unicast `2000::/3`.
//!
//! Operators open specific networks with `allowed_target_networks` (tests allow 127.0.0.0/8).
//! Cloud metadata addresses are the exception: only an exact single-address entry for them
//! (`169.254.169.254/32`) opens them, so allowing a whole link-local range never exposes
//! credentials by accident.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// What kind of address was refused; drives the human reason and lets callers count by kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Category {
    /// 127.0.0.0/8, ::1.
    Loopback,
    /// 0.0.0.0/8, :: — "this host", which reaches loopback services on most systems.
    Unspecified,
    /// RFC 1918: 10/8, 172.16/12, 192.168/16.
    Private,
    /// 169.254/16, fe80::/10.
    LinkLocal,
    /// 100.64/10, carrier-grade NAT shared space.
    SharedAddressSpace,
    /// 224/4, ff00::/8.
    Multicast,
    /// 255.255.255.255.
    Broadcast,
    /// TEST-NET-1/2/3, 2001:db8::/32, 3fff::/20.
    Documentation,
    /// 198.18/15, 2001:2::/48.
    Benchmarking,
    /// Reserved or special-purpose blocks that are not ordinary hosts.
    Reserved,
    /// fc00::/7, the IPv6 private range.
    UniqueLocal,
    /// fec0::/10, the deprecated IPv6 private range.
    SiteLocal,
    /// 64:ff9b::/96 and 64:ff9b:1::/48: translated to IPv4 by a local gateway.
    Nat64,
    /// 2002::/16: tunnels to an embedded IPv4 address.
    SixToFour,
    /// 2001::/32: tunnels to an embedded IPv4 address.
    Teredo,
    /// ::ffff:0:0/96 whose embedded IPv4 address is itself public.
    Ipv4Mapped,
    /// ::/96 whose embedded IPv4 address is itself public.
    Ipv4Compatible,
    /// 169.254.169.254 and fd00:ec2::254: instance metadata and credentials.
    CloudMetadata,
}

impl Category {
    /// The phrase used in reasons: "address X is {phrase} (network)".
    pub fn phrase(self) -> &'static str {
        match self {
            Self::Loopback => "loopback",
            Self::Unspecified => "unspecified, i.e. \"this host\"",
            Self::Private => "private",
            Self::LinkLocal => "link-local",
            Self::SharedAddressSpace => "carrier-grade NAT shared address space",
            Self::Multicast => "multicast",
            Self::Broadcast => "broadcast",
            Self::Documentation => "reserved for documentation",
            Self::Benchmarking => "reserved for benchmarking",
            Self::Reserved => "reserved, not an ordinary host",
            Self::UniqueLocal => "unique-local, i.e. private IPv6",
            Self::SiteLocal => "site-local, a deprecated private IPv6 range",
            Self::Nat64 => "NAT64, translated to a hidden IPv4 address",
            Self::SixToFour => "6to4, tunnelled to a hidden IPv4 address",
            Self::Teredo => "Teredo, tunnelled to a hidden IPv4 address",
            Self::Ipv4Mapped => "IPv4-mapped",
            Self::Ipv4Compatible => "deprecated IPv4-compatible",
            Self::CloudMetadata => "a cloud metadata endpoint, which hands out instance credentials",
        }
    }
}

/// How an IPv6 address embedded the IPv4 address it was normalised to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Embedding {
    /// `::ffff:a.b.c.d`.
    Ipv4Mapped,
    /// `::a.b.c.d`.
    Ipv4Compatible,
}

/// Why one address may not be connected to. A value, with a human [`fmt::Display`] that
/// tells the operator how to allow it if they mean to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Refusal {
    address: IpAddr,
    embedded: Option<(Embedding, Ipv4Addr)>,
    category: Category,
    network: IpNet,
}

impl Refusal {
    /// The address as resolved or written.
    pub fn address(&self) -> IpAddr {
        self.address
    }

    /// The address that was classified: the embedded IPv4 address for mapped/compatible
    /// IPv6 forms, otherwise the address itself. Allow-list entries match this.
    pub fn normalised(&self) -> IpAddr {
        self.embedded.map_or(self.address, |(_, v4)| IpAddr::V4(v4))
    }

    /// The kind of address.
    pub fn category(&self) -> Category {
        self.category
    }

    /// The refused network the address falls in.
    pub fn network(&self) -> IpNet {
        self.network
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (category, network) = (self.category.phrase(), self.network);
        write!(f, "address {} is ", self.address)?;
        match self.embedded {
            Some((how, v4)) if !matches!(self.category, Category::Ipv4Mapped | Category::Ipv4Compatible) => {
                let how = match how {
                    Embedding::Ipv4Mapped => "IPv4-mapped",
                    Embedding::Ipv4Compatible => "IPv4-compatible",
                };
                write!(f, "{how} {v4}, which is {category} ({network})")?;
            }
            _ => write!(f, "{category} ({network})")?,
        }
        let normalised = self.normalised();
        match (self.category, self.embedded.is_some()) {
            (Category::CloudMetadata, _) => {
                let host = IpNet::from(normalised);
                write!(
                    f,
                    "; only the exact allowed_target_networks entry {host} allows it"
                )
            }
            (_, true) => write!(f, "; add {normalised} to allowed_target_networks to allow it"),
            (_, false) => f.write_str("; add it to allowed_target_networks to allow it"),
        }
    }
}

impl std::error::Error for Refusal {}

/// Which addresses deliveries may reach: everything public, plus the networks an operator
/// explicitly opened (`allowed_target_networks`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    /// Networks opened despite their class. Matched against the normalised address.
    pub allowed: Vec<IpNet>,
}

impl Policy {
    /// A policy opening `allowed` (e.g. `127.0.0.0/8` for tests against a local receiver).
    pub fn new(allowed: Vec<IpNet>) -> Self {
        Self { allowed }
    }

    /// `Ok` if a delivery may connect to `ip`, else the reason it may not.
    pub fn check(&self, ip: IpAddr) -> Result<(), Refusal> {
        let Some(refusal) = classify(ip) else {
            return Ok(());
        };
        let normalised = refusal.normalised();
        let opened = self.allowed.iter().any(|net| {
            if refusal.category == Category::CloudMetadata {
                net.prefix_len() == net.max_prefix_len() && net.addr() == normalised
            } else {
                net.contains(&normalised) || net.contains(&ip)
            }
        });
        if opened {
            Ok(())
        } else {
            Err(refusal)
        }
    }
}

/// Classifies `ip` with no allow-list: `None` means an ordinary public address.
pub fn classify(ip: IpAddr) -> Option<Refusal> {
    let refusal = |embedded, (category, network)| Refusal {
        address: ip,
        embedded,
        category,
        network,
    };
    match ip {
        IpAddr::V4(v4) => classify_v4(v4).map(|found| refusal(None, found)),
        IpAddr::V6(v6) => match embedded_v4(v6) {
            Some((how, v4)) => {
                let found = classify_v4(v4).unwrap_or(match how {
                    Embedding::Ipv4Mapped => (Category::Ipv4Mapped, v6_net(0xffff << 32, 96)),
                    Embedding::Ipv4Compatible => (Category::Ipv4Compatible, v6_net(0, 96)),
                });
                Some(refusal(Some((how, v4)), found))
            }
            None => classify_v6(v6).map(|found| refusal(None, found)),
        },
    }
}

/// The IPv4 address inside `::ffff:a.b.c.d` or `::a.b.c.d` (but not `::` or `::1`, which are
/// IPv6's own unspecified and loopback addresses).
fn embedded_v4(v6: Ipv6Addr) -> Option<(Embedding, Ipv4Addr)> {
    if let Some(v4) = v6.to_ipv4_mapped() {
        return Some((Embedding::Ipv4Mapped, v4));
    }
    let bits = u128::from(v6);
    if bits >> 32 == 0 && bits > 1 {
        return Some((Embedding::Ipv4Compatible, Ipv4Addr::from(bits as u32)));
    }
    None
}

use Category as C;

/// IPv4 blocks, most specific first so the reason names the narrowest match.
#[rustfmt::skip]
const V4_BLOCKS: &[(u32, u8, Category)] = &[
    (0xa9fe_a9fe, 32, C::CloudMetadata),      // 169.254.169.254
    (0xffff_ffff, 32, C::Broadcast),          // 255.255.255.255
    (0x0000_0000, 8,  C::Unspecified),        // 0.0.0.0/8
    (0x7f00_0000, 8,  C::Loopback),           // 127.0.0.0/8
    (0x0a00_0000, 8,  C::Private),            // 10.0.0.0/8
    (0xac10_0000, 12, C::Private),            // 172.16.0.0/12
    (0xc0a8_0000, 16, C::Private),            // 192.168.0.0/16
    (0x6440_0000, 10, C::SharedAddressSpace), // 100.64.0.0/10
    (0xa9fe_0000, 16, C::LinkLocal),          // 169.254.0.0/16
    (0xc000_0000, 24, C::Reserved),           // 192.0.0.0/24 IETF protocol assignments
    (0xc000_0200, 24, C::Documentation),      // 192.0.2.0/24 TEST-NET-1
    (0xc612_0000, 15, C::Benchmarking),       // 198.18.0.0/15
    (0xc633_6400, 24, C::Documentation),      // 198.51.100.0/24 TEST-NET-2
    (0xcb00_7100, 24, C::Documentation),      // 203.0.113.0/24 TEST-NET-3
    (0xc058_6300, 24, C::Reserved),           // 192.88.99.0/24 deprecated 6to4 relays
    (0xe000_0000, 4,  C::Multicast),          // 224.0.0.0/4
    (0xf000_0000, 4,  C::Reserved),           // 240.0.0.0/4
];

/// IPv6 blocks (embedded-IPv4 forms are handled before these), most specific first.
#[rustfmt::skip]
const V6_BLOCKS: &[(u128, u8, Category)] = &[
    (0xfd00_0ec2_0000_0000_0000_0000_0000_0254, 128, C::CloudMetadata), // fd00:ec2::254
    (0,                                         128, C::Unspecified),   // ::
    (1,                                         128, C::Loopback),      // ::1
    (0x0000_0000_0000_0000_ffff_0000_0000_0000, 96,  C::Reserved),      // ::ffff:0:0:0/96 SIIT
    (0x0064_ff9b_0000_0000_0000_0000_0000_0000, 96,  C::Nat64),         // 64:ff9b::/96
    (0x0064_ff9b_0001_0000_0000_0000_0000_0000, 48,  C::Nat64),         // 64:ff9b:1::/48
    (0x0100_0000_0000_0000_0000_0000_0000_0000, 64,  C::Reserved),      // 100::/64 discard
    (0x2001_0002_0000_0000_0000_0000_0000_0000, 48,  C::Benchmarking),  // 2001:2::/48
    (0x2001_0000_0000_0000_0000_0000_0000_0000, 32,  C::Teredo),        // 2001::/32
    (0x2001_0010_0000_0000_0000_0000_0000_0000, 28,  C::Reserved),      // 2001:10::/28 ORCHID
    (0x2001_0020_0000_0000_0000_0000_0000_0000, 28,  C::Reserved),      // 2001:20::/28 ORCHIDv2
    (0x2001_0db8_0000_0000_0000_0000_0000_0000, 32,  C::Documentation), // 2001:db8::/32
    (0x2002_0000_0000_0000_0000_0000_0000_0000, 16,  C::SixToFour),     // 2002::/16
    (0x3fff_0000_0000_0000_0000_0000_0000_0000, 20,  C::Documentation), // 3fff::/20
    (0xfc00_0000_0000_0000_0000_0000_0000_0000, 7,   C::UniqueLocal),   // fc00::/7
    (0xfe80_0000_0000_0000_0000_0000_0000_0000, 10,  C::LinkLocal),     // fe80::/10
    (0xfec0_0000_0000_0000_0000_0000_0000_0000, 10,  C::SiteLocal),     // fec0::/10
    (0xff00_0000_0000_0000_0000_0000_0000_0000, 8,   C::Multicast),     // ff00::/8
];

fn classify_v4(ip: Ipv4Addr) -> Option<(Category, IpNet)> {
    let bits = u32::from(ip);
    V4_BLOCKS.iter().find_map(|&(base, prefix, category)| {
        let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
        (bits & mask == base).then(|| (category, v4_net(base, prefix)))
    })
}

fn classify_v6(ip: Ipv6Addr) -> Option<(Category, IpNet)> {
    let bits = u128::from(ip);
    let listed = V6_BLOCKS.iter().find_map(|&(base, prefix, category)| {
        let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
        (bits & mask == base).then(|| (category, v6_net(base, prefix)))
    });
    // Safety net: only global unicast 2000::/3 holds ordinary hosts today.
    listed.or_else(|| (bits >> 125 != 0b001).then(|| (C::Reserved, v6_net(bits, 3).trunc())))
}

fn v4_net(base: u32, prefix: u8) -> IpNet {
    Ipv4Net::new(Ipv4Addr::from(base), prefix)
        .map_or_else(|_| IpNet::from(IpAddr::from(Ipv4Addr::from(base))), IpNet::V4)
}

fn v6_net(base: u128, prefix: u8) -> IpNet {
    Ipv6Net::new(Ipv6Addr::from(base), prefix)
        .map_or_else(|_| IpNet::from(IpAddr::from(Ipv6Addr::from(base))), IpNet::V6)
}

#[cfg(test)]
mod tests;
