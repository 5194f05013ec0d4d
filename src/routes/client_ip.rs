//! Who is asking: the client address used for rate limits and written in the consent ledger.
//! `X-Forwarded-For` and `Forwarded` count only when the connection comes from a proxy listed in
//! `server.trusted_proxies`, and then the client is the rightmost address in the chain that is
//! not a trusted proxy (what a client writes further left cannot be told from forgery).
//! IPv4-mapped IPv6 addresses (`::ffff:192.0.2.1`) are taken as the IPv4 address they carry.

use std::net::IpAddr;

use actix_web::HttpRequest;
use actix_web::http::header::{FORWARDED, HeaderName};
use ipnet::IpNet;

/// The client's address, or `unknown` when the connection has none (never in practice).
pub fn client_ip(request: &HttpRequest, trusted: &[IpNet]) -> String {
    let Some(peer) = request.peer_addr() else {
        return "unknown".into();
    };
    let headers = request.headers();
    let forwarded: Vec<String> = headers
        .get_all(FORWARDED)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(forwarded_for)
        .collect();
    let hops = if forwarded.is_empty() {
        headers
            .get_all(HeaderName::from_static("x-forwarded-for"))
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|hop| hop.trim().to_string())
            .collect()
    } else {
        forwarded
    };
    resolve(peer.ip(), &hops, trusted).to_string()
}

/// Walks the chain from the connection's peer leftwards past trusted proxies.
pub fn resolve(peer: IpAddr, hops: &[String], trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    let mut client = peer.to_canonical();
    for hop in hops.iter().rev() {
        if !is_trusted(&client) {
            return client;
        }
        // A hop that is no address (`unknown`, garbage): the last trusted hop is all we know.
        match parse_hop(hop) {
            Some(ip) => client = ip.to_canonical(),
            None => return client,
        }
    }
    client
}

/// The `for=` of one `Forwarded` element (RFC 7239), e.g. `for="[2001:db8::1]:4711";proto=https`.
fn forwarded_for(element: &str) -> Option<String> {
    element.split(';').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        key.trim()
            .eq_ignore_ascii_case("for")
            .then(|| value.trim().to_string())
    })
}

/// An address as proxies write it: bare, quoted, in brackets, with or without a port.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim().trim_matches('"');
    if let Some(rest) = hop.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    if let Ok(ip) = hop.parse() {
        return Some(ip);
    }
    match hop.rsplit_once(':') {
        Some((ip, port)) if port.parse::<u16>().is_ok() => ip.parse().ok(),
        _ => None,
    }
}

/// The default of the retired `server.trust_forwarded_for = true`: a proxy on this machine.
pub fn loopback() -> Vec<IpNet> {
    ["127.0.0.0/8", "::1/128"]
        .iter()
        .filter_map(|net| net.parse().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    fn client(peer: &str, hops: &[&str], trusted: &[&str]) -> String {
        let hops: Vec<String> = hops.iter().map(|h| h.to_string()).collect();
        resolve(peer.parse().unwrap(), &hops, &nets(trusted)).to_string()
    }

    #[test]
    fn forwarded_addresses_count_only_from_a_trusted_proxy() {
        assert_eq!(
            client("198.51.100.7", &["203.0.113.1"], &[]),
            "198.51.100.7"
        );
        assert_eq!(
            client("198.51.100.7", &["203.0.113.1"], &["127.0.0.1/32"]),
            "198.51.100.7"
        );
        assert_eq!(
            client("127.0.0.1", &["203.0.113.1"], &["127.0.0.1/32"]),
            "203.0.113.1"
        );
    }

    #[test]
    fn the_client_is_the_rightmost_hop_that_is_not_a_trusted_proxy() {
        let trusted = ["127.0.0.1/32", "10.0.0.0/8"];
        // What the client wrote itself (1.2.3.4) is left of what our proxies saw.
        assert_eq!(
            client(
                "127.0.0.1",
                &["1.2.3.4", "203.0.113.9", "10.1.2.3"],
                &trusted
            ),
            "203.0.113.9"
        );
        assert_eq!(
            client("127.0.0.1", &["10.9.9.9", "10.1.2.3"], &trusted),
            "10.9.9.9"
        );
        assert_eq!(
            client("127.0.0.1", &["garbage", "10.1.2.3"], &trusted),
            "10.1.2.3"
        );
    }

    #[test]
    fn ipv4_mapped_addresses_are_unmapped() {
        assert_eq!(client("::ffff:198.51.100.20", &[], &[]), "198.51.100.20");
        assert_eq!(
            client(
                "::ffff:127.0.0.1",
                &["::ffff:203.0.113.5"],
                &["127.0.0.0/8"]
            ),
            "203.0.113.5"
        );
    }

    #[test]
    fn proxies_write_addresses_in_several_ways() {
        assert_eq!(
            forwarded_for(r#"for="[2001:db8:cafe::17]:4711";proto=https"#).as_deref(),
            Some(r#""[2001:db8:cafe::17]:4711""#)
        );
        for (hop, ip) in [
            (r#""[2001:db8:cafe::17]:4711""#, "2001:db8:cafe::17"),
            ("192.0.2.60:8080", "192.0.2.60"),
            ("2001:db8::1", "2001:db8::1"),
            (" 192.0.2.43 ", "192.0.2.43"),
        ] {
            assert_eq!(parse_hop(hop).unwrap().to_string(), ip, "{hop}");
        }
        assert_eq!(parse_hop("unknown"), None);
        assert_eq!(parse_hop("_hidden"), None);
    }
}
