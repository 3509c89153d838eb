//! Reasons, categories and allow-list behaviour of the address policy.

use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn reasons_name_the_class_the_network_and_the_fix() {
    #[rustfmt::skip]
    let cases = [
        ("10.0.0.5", "address 10.0.0.5 is private (10.0.0.0/8); add it to allowed_target_networks to allow it"),
        ("::ffff:10.0.0.5", "address ::ffff:10.0.0.5 is IPv4-mapped 10.0.0.5, which is private (10.0.0.0/8); add 10.0.0.5 to allowed_target_networks to allow it"),
        ("::ffff:8.8.8.8", "address ::ffff:8.8.8.8 is IPv4-mapped (::ffff:0.0.0.0/96); add 8.8.8.8 to allowed_target_networks to allow it"),
        ("::8.8.8.8", "address ::808:808 is deprecated IPv4-compatible (::/96); add 8.8.8.8 to allowed_target_networks to allow it"),
        ("169.254.169.254", "address 169.254.169.254 is a cloud metadata endpoint, which hands out instance credentials (169.254.169.254/32); only the exact allowed_target_networks entry 169.254.169.254/32 allows it"),
        ("fd00:ec2::254", "address fd00:ec2::254 is a cloud metadata endpoint, which hands out instance credentials (fd00:ec2::254/128); only the exact allowed_target_networks entry fd00:ec2::254/128 allows it"),
        ("4000::1", "address 4000::1 is reserved, not an ordinary host (4000::/3); add it to allowed_target_networks to allow it"),
    ];
    for (addr, expected) in cases {
        assert_eq!(classify(ip(addr)).unwrap().to_string(), expected);
    }
}

#[test]
fn categories_and_networks() {
    #[rustfmt::skip]
    let cases = [
        ("127.8.9.10",      C::Loopback,           "127.0.0.0/8"),
        ("0.0.0.0",         C::Unspecified,        "0.0.0.0/8"),
        ("::",              C::Unspecified,        "::/128"),
        ("::1",             C::Loopback,           "::1/128"),
        ("::2",             C::Unspecified,        "0.0.0.0/8"),
        ("::ffff:127.0.0.1",C::Loopback,           "127.0.0.0/8"),
        ("172.31.255.255",  C::Private,            "172.16.0.0/12"),
        ("100.127.0.1",     C::SharedAddressSpace, "100.64.0.0/10"),
        ("169.254.0.1",     C::LinkLocal,          "169.254.0.0/16"),
        ("255.255.255.255", C::Broadcast,          "255.255.255.255/32"),
        ("250.1.2.3",       C::Reserved,           "240.0.0.0/4"),
        ("239.1.1.1",       C::Multicast,          "224.0.0.0/4"),
        ("198.19.0.1",      C::Benchmarking,       "198.18.0.0/15"),
        ("64:ff9b::a00:1",  C::Nat64,              "64:ff9b::/96"),
        ("64:ff9b:1::1",    C::Nat64,              "64:ff9b:1::/48"),
        ("2002:a00:1::",    C::SixToFour,          "2002::/16"),
        ("2001:0:1::1",     C::Teredo,             "2001::/32"),
        ("2001:db8::1",     C::Documentation,      "2001:db8::/32"),
        ("fec0::1",         C::SiteLocal,          "fec0::/10"),
        ("fdff::1",         C::UniqueLocal,        "fc00::/7"),
        ("febf::1",         C::LinkLocal,          "fe80::/10"),
        ("ff02::1",         C::Multicast,          "ff00::/8"),
    ];
    for (addr, category, network) in cases {
        let r = classify(ip(addr)).unwrap_or_else(|| panic!("{addr} not refused"));
        assert_eq!(
            (r.category(), r.network().to_string().as_str()),
            (category, network),
            "{addr}"
        );
    }
    for public in [
        "8.8.8.8",
        "172.32.0.1",
        "100.128.0.1",
        "2001:4860::8888",
        "2606:4700::1111",
    ] {
        assert_eq!(classify(ip(public)), None, "{public}");
    }
}

#[test]
fn allow_list_matches_the_normalised_address() {
    let policy = Policy::new(vec!["10.0.0.0/8".parse().unwrap()]);
    assert!(policy.check(ip("10.1.2.3")).is_ok());
    assert!(policy.check(ip("::ffff:10.1.2.3")).is_ok());
    assert!(policy.check(ip("::10.1.2.3")).is_ok());
    assert!(policy.check(ip("11.0.0.1")).is_ok(), "public stays allowed");
    assert_eq!(
        policy.check(ip("192.168.0.1")).unwrap_err().category(),
        C::Private
    );
}

#[test]
fn metadata_needs_an_exact_entry() {
    let broad = Policy::new(vec![
        "169.254.0.0/16".parse().unwrap(),
        "fd00::/8".parse().unwrap(),
    ]);
    assert!(broad.check(ip("169.254.1.1")).is_ok());
    assert!(broad.check(ip("fd00::1")).is_ok());
    for meta in ["169.254.169.254", "::ffff:169.254.169.254", "fd00:ec2::254"] {
        assert_eq!(broad.check(ip(meta)).unwrap_err().category(), C::CloudMetadata);
    }
    let exact = Policy::new(vec!["169.254.169.254/32".parse().unwrap()]);
    assert!(exact.check(ip("169.254.169.254")).is_ok());
    assert!(exact.check(ip("::ffff:169.254.169.254")).is_ok());
}
