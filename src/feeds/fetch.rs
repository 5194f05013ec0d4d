//! Fetching a feed over http(s) without reaching into the operator's own network. Every address
//! a host name resolves to is checked before connecting (so DNS cannot point us at an internal
//! service), literal addresses too, and again at each redirect (five at most). Loopback,
//! private, link-local and other non-public addresses are refused unless
//! `feeds.allow_private_networks` is set. Bodies over 5 MB and servers that stall are cut off,
//! and errors say what happened without echoing internal addresses.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use super::FeedError;

/// Largest feed we read.
pub const MAX_FEED_BYTES: usize = 5 * 1024 * 1024;
const MAX_REDIRECTS: usize = 5;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest silence while the feed is coming.
const READ_TIMEOUT: Duration = Duration::from_secs(10);
const TOTAL_TIMEOUT: Duration = Duration::from_secs(30);

/// Which addresses a feed may be fetched from.
#[derive(Clone)]
pub struct FetchPolicy {
    allows: Arc<dyn Fn(IpAddr) -> bool + Send + Sync>,
}

impl FetchPolicy {
    pub fn new(allow_private_networks: bool) -> FetchPolicy {
        FetchPolicy::allowing(move |ip| allow_private_networks || is_public(ip))
    }

    fn allowing(allows: impl Fn(IpAddr) -> bool + Send + Sync + 'static) -> FetchPolicy {
        FetchPolicy {
            allows: Arc::new(allows),
        }
    }

    fn allows(&self, ip: IpAddr) -> bool {
        (self.allows)(ip.to_canonical())
    }
}

/// What went wrong, in words fit for the person who asked.
#[derive(Debug, thiserror::Error)]
enum Problem {
    #[error(
        "its address is in a private network (loopback, private and link-local addresses are \
         refused; set feeds.allow_private_networks = true to allow them)"
    )]
    PrivateAddress,
    #[error("the host {0} could not be found")]
    UnknownHost(String),
    #[error("it redirected more than {MAX_REDIRECTS} times")]
    TooManyRedirects,
    #[error("it redirected to an address that is not http(s)")]
    NotHttp,
}

/// Is this an address anyone on the internet can reach (so not ours)?
pub fn is_public(ip: IpAddr) -> bool {
    match ip.to_canonical() {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_documentation()
        || ip.is_multicast()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space (carrier NAT)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240) // reserved
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let segments = ip.segments();
    // NAT64 (64:ff9b::/96) reaches the IPv4 address it embeds.
    if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        let [.., hi, lo] = segments;
        let embedded = Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
        return is_public_v4(embedded);
    }
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || ip.is_unique_local()
        || ip.is_unicast_link_local()
        || (segments[0] & 0xffc0) == 0xfec0 // site-local
        || (segments[0] == 0x2001 && segments[1] == 0x0db8) // documentation
        || segments[..6] == [0, 0, 0, 0, 0, 0]) // IPv4-compatible and the like
}

/// Resolves host names and keeps only the addresses the policy allows.
struct CheckedResolver {
    policy: FetchPolicy,
}

impl Resolve for CheckedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            let host = name.as_str().to_string();
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map_err(|_| Problem::UnknownHost(host.clone()))?
                .collect();
            if found.is_empty() {
                return Err(Problem::UnknownHost(host).into());
            }
            let allowed: Vec<SocketAddr> = found
                .into_iter()
                .filter(|address| policy.allows(address.ip()))
                .collect();
            if allowed.is_empty() {
                return Err(Problem::PrivateAddress.into());
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

/// A URL's host when it is an address rather than a name (no DNS is asked for those).
fn literal_ip(url: &url::Url) -> Option<IpAddr> {
    match url.host()? {
        url::Host::Ipv4(v4) => Some(IpAddr::V4(v4)),
        url::Host::Ipv6(v6) => Some(IpAddr::V6(v6)),
        url::Host::Domain(_) => None,
    }
}

fn check_target(url: &url::Url, policy: &FetchPolicy) -> Result<(), Problem> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Problem::NotHttp);
    }
    match literal_ip(url) {
        Some(ip) if !policy.allows(ip) => Err(Problem::PrivateAddress),
        _ => Ok(()),
    }
}

/// What a feed's server said of the copy it sent (`ETag`, `Last-Modified`), to ask next time
/// whether it changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Validators {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

/// A conditional fetch's answer.
#[derive(Debug)]
pub enum Fetched {
    /// 304: the feed is as it was.
    NotModified,
    Body {
        bytes: Vec<u8>,
        validators: Validators,
    },
}

pub async fn fetch(url: &str, policy: &FetchPolicy) -> Result<Vec<u8>, FeedError> {
    match fetch_if_changed(url, policy, &Validators::default()).await? {
        Fetched::Body { bytes, .. } => Ok(bytes),
        Fetched::NotModified => Err(FeedError::Fetch(
            "its server answered 304 Not Modified to a plain request".into(),
        )),
    }
}

/// Fetches a feed unless it is unchanged since the copy `since` describes (`If-None-Match`,
/// `If-Modified-Since`), so polling a feed that did not change costs its server nothing.
pub async fn fetch_if_changed(
    url: &str,
    policy: &FetchPolicy,
    since: &Validators,
) -> Result<Fetched, FeedError> {
    use reqwest::header::{ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED};
    crate::install_crypto_provider();
    let parsed = url::Url::parse(url).map_err(|_| FeedError::Refused("it is not a URL".into()))?;
    check_target(&parsed, policy).map_err(|p| FeedError::Refused(p.to_string()))?;
    let redirects = policy.clone();
    let client = reqwest::Client::builder()
        .dns_resolver(Arc::new(CheckedResolver {
            policy: policy.clone(),
        }))
        .redirect(reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() > MAX_REDIRECTS {
                return attempt.error(Problem::TooManyRedirects);
            }
            match check_target(attempt.url(), &redirects) {
                Ok(()) => attempt.follow(),
                Err(problem) => attempt.error(problem),
            }
        }))
        .connect_timeout(CONNECT_TIMEOUT)
        .read_timeout(READ_TIMEOUT)
        .timeout(TOTAL_TIMEOUT)
        .user_agent(concat!(
            "newsletter/",
            env!("CARGO_PKG_VERSION"),
            " (feed import)"
        ))
        .build()
        .map_err(|e| FeedError::Fetch(format!("no HTTP client: {e}")))?;
    let mut request = client.get(parsed);
    if let Some(etag) = &since.etag {
        request = request.header(IF_NONE_MATCH, etag);
    }
    if let Some(modified) = &since.last_modified {
        request = request.header(IF_MODIFIED_SINCE, modified);
    }
    let mut response = request.send().await.map_err(explain)?;
    let status = response.status();
    if status == reqwest::StatusCode::NOT_MODIFIED {
        return Ok(Fetched::NotModified);
    }
    // A redirect reqwest did not follow went somewhere other than http(s).
    if status.is_redirection() {
        return Err(FeedError::Refused(Problem::NotHttp.to_string()));
    }
    if !status.is_success() {
        return Err(FeedError::Fetch(format!("its server answered {status}")));
    }
    let header = |name| {
        response
            .headers()
            .get(name)
            .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
            .map(str::to_string)
    };
    let validators = Validators {
        etag: header(ETAG),
        last_modified: header(LAST_MODIFIED),
    };
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(explain)? {
        if body.len() + chunk.len() > MAX_FEED_BYTES {
            return Err(FeedError::Fetch(format!(
                "it is larger than {} MB",
                MAX_FEED_BYTES / (1024 * 1024)
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Fetched::Body {
        bytes: body,
        validators,
    })
}

/// A failed request in words, without the addresses and library details behind it (those
/// go to the log).
fn explain(error: reqwest::Error) -> FeedError {
    let problem = std::iter::successors(std::error::Error::source(&error), |e| e.source())
        .find_map(|cause| cause.downcast_ref::<Problem>());
    if let Some(problem) = problem {
        return match problem {
            Problem::UnknownHost(_) => FeedError::Fetch(problem.to_string()),
            _ => FeedError::Refused(problem.to_string()),
        };
    }
    tracing::warn!(error = %super::error_chain(&error), "feed fetch failed");
    let message = if error.is_timeout() {
        format!(
            "its server did not answer in time ({} s to connect, {} s of silence, {} s in all)",
            CONNECT_TIMEOUT.as_secs(),
            READ_TIMEOUT.as_secs(),
            TOTAL_TIMEOUT.as_secs()
        )
    } else if error.is_connect() {
        "its server could not be reached".to_string()
    } else if error.is_body() || error.is_decode() {
        "its server broke off while sending it".to_string()
    } else {
        "the request failed".to_string()
    };
    FeedError::Fetch(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_addresses_anyone_can_reach_are_public() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "198.18.0.1",
            "192.0.0.8",
            "255.255.255.255",
            "240.0.0.1",
            "224.0.0.1",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "fc00::1",
            "fec0::1",
            "2001:db8::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
            "::127.0.0.1",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in [
            "93.184.216.34",
            "8.8.8.8",
            "2606:4700:4700::1111",
            "64:ff9b::808:808",
        ] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }

    /// An HTTP server on loopback whose every answer is a redirect to `to`.
    async fn redirecting_to(to: &str) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let to = to.to_string();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut request = [0u8; 1024];
                let _ = stream.read(&mut request).await;
                let answer = format!(
                    "HTTP/1.1 302 Found\r\nLocation: {to}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
                let _ = stream.write_all(answer.as_bytes()).await;
            }
        });
        format!("http://{address}/feed.xml")
    }

    #[tokio::test]
    async fn a_redirect_into_a_private_network_is_refused_even_when_the_first_address_was_allowed()
    {
        // Loopback is allowed here (the test server lives there); nothing else private is.
        let policy = FetchPolicy::allowing(|ip| ip.is_loopback() || is_public(ip));
        for target in [
            "http://10.0.0.1/latest/meta-data",
            "http://[fd00::1]/",
            "file:///etc/passwd",
        ] {
            let url = redirecting_to(target).await;
            let error = fetch(&url, &policy).await.unwrap_err();
            assert!(matches!(error, FeedError::Refused(_)), "{target}: {error}");
            assert!(
                !error.to_string().contains("10.0.0.1"),
                "no internal detail: {error}"
            );
        }
        // A redirect loop ends after five.
        let url = redirecting_to("/feed.xml").await;
        let error = fetch(&url, &policy).await.unwrap_err();
        assert!(error.to_string().contains("more than 5 times"), "{error}");
    }
}
