//! The callback URL and the guard against server-side request forgery.
//!
//! A callback URL is chosen by the caller, and Jobline's functions run inside
//! AWS, next to the instance metadata service (169.254.169.254,
//! fd00:ec2::254), the container credentials endpoint (169.254.170.2) and
//! whatever private addresses the account can reach. A URL that names one
//! of those, directly or through a DNS name that resolves to one, must not
//! get a request from Jobline.
//!
//! [`CallbackUrl::parse`] checks the URL's form (https, a host, no user
//! information, at most [`MAX_URL_BYTES`]) and refuses a literal address
//! that is not public. A literal address is whatever the URL Standard
//! (<https://url.spec.whatwg.org/#host-parsing>) reads as one, as a browser
//! and the C resolver's `inet_aton` do: a host whose last label is a number
//! (decimal, `0x` hexadecimal or `0`-prefixed octal) is an IPv4 address in
//! one of its legacy forms (`2130706433`, `127.1`, `0x7f.1`, `0177.0.0.1`,
//! `0x7f000001`...), parsed as the standard parses it and then checked like
//! `127.0.0.1`; one that does not parse is no valid host. Checking only
//! dotted quads would let such a host through as a "name" that the resolver
//! then turns into the address the check was meant to refuse.
//! [`CallbackUrl::resolve`] resolves the host once and
//! refuses it if any of its addresses is not public, and returns the address
//! it checked: the deliverer connects to that address and does not resolve
//! the name again, so there is no window in which a second answer (DNS
//! rebinding) could send the request elsewhere. [`classify`] is the
//! address check: a public address is `None`, anything else says what it is.
//! IPv6 forms that carry an IPv4 address (IPv4-mapped, IPv4-compatible,
//! NAT64 and 6to4) are checked as that IPv4 address.

pub use jobline_core::config::CallbackPolicy;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The longest callback URL accepted, in bytes.
pub const MAX_URL_BYTES: usize = 2048;

/// The scheme of a callback URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Https,
    /// Only to a loopback host, under [`CallbackPolicy::allow_http_loopback`].
    Http,
}

impl Scheme {
    fn default_port(self) -> u16 {
        match self {
            Self::Https => 443,
            Self::Http => 80,
        }
    }
}

/// The host of a callback URL: an address, or a DNS name (lower case, no
/// trailing dot).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    Ip(IpAddr),
    Name(String),
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
            Self::Ip(IpAddr::V4(ip)) => write!(f, "{ip}"),
            Self::Name(name) => f.write_str(name),
        }
    }
}

/// What a refused address is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forbidden {
    /// 0.0.0.0/8, `::`.
    Unspecified,
    /// 127.0.0.0/8, `::1`.
    Loopback,
    /// 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16.
    Private,
    /// 100.64.0.0/10, carrier-grade NAT.
    SharedAddressSpace,
    /// 169.254.0.0/16 (the metadata and credentials endpoints), fe80::/10,
    /// and the deprecated site-local fec0::/10.
    LinkLocal,
    /// fc00::/7 (fd00:ec2::254, the metadata endpoint over IPv6).
    UniqueLocal,
    /// 224.0.0.0/4, ff00::/8.
    Multicast,
    /// 255.255.255.255.
    Broadcast,
    /// 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32.
    Documentation,
    /// Anything else that is not public unicast: 192.0.0.0/24,
    /// 192.88.99.0/24, 198.18.0.0/15, 240.0.0.0/4, Teredo 2001::/32, the
    /// local-use NAT64 prefix 64:ff9b:1::/48, and IPv6 outside 2000::/3.
    Reserved,
}

impl fmt::Display for Forbidden {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Unspecified => "unspecified",
            Self::Loopback => "loopback",
            Self::Private => "private",
            Self::SharedAddressSpace => "shared (carrier-grade NAT)",
            Self::LinkLocal => "link-local",
            Self::UniqueLocal => "unique local",
            Self::Multicast => "multicast",
            Self::Broadcast => "broadcast",
            Self::Documentation => "documentation",
            Self::Reserved => "reserved",
        })
    }
}

/// Why a callback URL was refused, or could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum CallbackError {
    #[error("the callback URL has {0} bytes, more than {MAX_URL_BYTES}")]
    TooLong(usize),
    #[error("the callback URL is not a valid absolute URL")]
    Malformed,
    #[error("the callback URL's scheme must be https, not {0}")]
    Scheme(String),
    #[error("the callback URL must not carry a user name or password")]
    UserInfo,
    #[error("the callback URL must not carry a fragment")]
    Fragment,
    #[error("the callback URL has no host")]
    NoHost,
    #[error("the callback URL's host {0:?} is not a valid DNS name or address")]
    InvalidHost(String),
    #[error("the callback URL's port must be a number from 1 to 65535")]
    Port,
    #[error("the callback address {addr} is {class}, not a public address")]
    Forbidden { addr: IpAddr, class: Forbidden },
    #[error("could not resolve the callback host {host}: {source}")]
    Resolve {
        host: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the callback host {0} resolved to no address")]
    NoAddress(String),
}

impl CallbackError {
    /// Whether the URL itself is refused, for good: anything but a failed
    /// resolution, which may succeed later.
    pub fn is_refusal(&self) -> bool {
        !matches!(self, Self::Resolve { .. } | Self::NoAddress(_))
    }
}

/// A callback URL that passed [`CallbackUrl::parse`]: its form is allowed,
/// and so is its address if it is a literal one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackUrl {
    scheme: Scheme,
    host: Host,
    port: u16,
    path_and_query: String,
    policy: CallbackPolicy,
}

impl CallbackUrl {
    /// Checks a callback URL's form under `policy`; see the module's
    /// documentation. The port defaults to the scheme's.
    pub fn parse(text: &str, policy: CallbackPolicy) -> Result<Self, CallbackError> {
        if text.len() > MAX_URL_BYTES {
            return Err(CallbackError::TooLong(text.len()));
        }
        if text.contains('#') {
            return Err(CallbackError::Fragment);
        }
        let uri: http::Uri = text.parse().map_err(|_| CallbackError::Malformed)?;
        let scheme = match uri.scheme_str() {
            Some(s) if s.eq_ignore_ascii_case("https") => Scheme::Https,
            Some(s) if s.eq_ignore_ascii_case("http") && policy.allow_http_loopback => Scheme::Http,
            Some(s) => return Err(CallbackError::Scheme(s.to_owned())),
            None => return Err(CallbackError::Malformed),
        };
        let authority = uri.authority().ok_or(CallbackError::NoHost)?;
        if authority.as_str().contains('@') {
            return Err(CallbackError::UserInfo);
        }
        let host = parse_host(authority.host())?;
        if scheme == Scheme::Http && !is_loopback_host(&host) {
            return Err(CallbackError::Scheme("http".to_owned()));
        }
        if let Host::Ip(ip) = host {
            check_address(ip, policy)?;
        }
        // From the text: `Authority::port` takes a port out of range for none.
        let authority = authority.as_str();
        let after_host = if authority.starts_with('[') {
            authority.split_once(']').map_or("", |(_, rest)| rest)
        } else {
            authority.find(':').map_or("", |colon| &authority[colon..])
        };
        let port = match after_host.strip_prefix(':') {
            None if after_host.is_empty() => scheme.default_port(),
            None => return Err(CallbackError::Malformed),
            Some(port) if !port.bytes().all(|b| b.is_ascii_digit()) => {
                return Err(CallbackError::Port);
            }
            Some(port) => match port.parse::<u16>() {
                Ok(0) | Err(_) => return Err(CallbackError::Port),
                Ok(port) => port,
            },
        };
        let path_and_query = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
        let path_and_query = if path_and_query.is_empty() {
            "/".to_owned()
        } else {
            path_and_query
        };
        Ok(Self {
            scheme,
            host,
            port,
            path_and_query,
            policy,
        })
    }

    /// Resolves the host once and returns the address to connect to, the
    /// first one; refuses the URL if any of the addresses is not allowed
    /// (a name with one public and one private address is refused, whichever
    /// comes first). Connect to the address returned, never to the name.
    pub async fn resolve(&self) -> Result<SocketAddr, CallbackError> {
        let addrs: Vec<SocketAddr> = match &self.host {
            Host::Ip(ip) => vec![SocketAddr::new(*ip, self.port)],
            Host::Name(name) => tokio::net::lookup_host((name.as_str(), self.port))
                .await
                .map_err(|source| CallbackError::Resolve {
                    host: name.clone(),
                    source,
                })?
                .collect(),
        };
        for addr in &addrs {
            check_address(addr.ip(), self.policy)?;
        }
        addrs
            .first()
            .copied()
            .ok_or_else(|| CallbackError::NoAddress(self.host.to_string()))
    }

    /// The URL's scheme.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The URL's host: the TLS server name, and the `host` header.
    pub fn host(&self) -> &Host {
        &self.host
    }

    /// The port, the scheme's default if the URL names none.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The request target: the path and the query, `/` at least.
    pub fn path_and_query(&self) -> &str {
        &self.path_and_query
    }

    /// The `host` header: the host, and the port unless it is the default.
    pub fn host_header(&self) -> String {
        if self.port == self.scheme.default_port() {
            self.host.to_string()
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for CallbackUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.scheme {
            Scheme::Https => "https",
            Scheme::Http => "http",
        };
        write!(
            f,
            "{scheme}://{}{}",
            self.host_header(),
            self.path_and_query
        )
    }
}

fn check_address(ip: IpAddr, policy: CallbackPolicy) -> Result<(), CallbackError> {
    match classify(ip) {
        None => Ok(()),
        Some(Forbidden::Loopback) if policy.allow_loopback => Ok(()),
        Some(class) => Err(CallbackError::Forbidden { addr: ip, class }),
    }
}

fn is_loopback_host(host: &Host) -> bool {
    match host {
        Host::Ip(IpAddr::V4(ip)) => *ip == Ipv4Addr::LOCALHOST,
        Host::Ip(IpAddr::V6(ip)) => *ip == Ipv6Addr::LOCALHOST,
        Host::Name(name) => name == "localhost",
    }
}

/// An address in brackets (IPv6), an IPv4 address in any of the URL
/// Standard's forms ([`ends_in_a_number`], [`parse_ipv4`]), or a DNS name:
/// ASCII letters, digits and hyphens in labels of 1 to 63 bytes, at most 253
/// bytes. International names must come in their `xn--` form.
fn parse_host(raw: &str) -> Result<Host, CallbackError> {
    let invalid = || CallbackError::InvalidHost(raw.to_owned());
    if raw.is_empty() {
        return Err(CallbackError::NoHost);
    }
    if let Some(inner) = raw.strip_prefix('[') {
        let inner = inner.strip_suffix(']').ok_or_else(invalid)?;
        let ip: Ipv6Addr = inner.parse().map_err(|_| invalid())?;
        return Ok(Host::Ip(IpAddr::V6(ip)));
    }
    let lower = raw.to_ascii_lowercase();
    if ends_in_a_number(&lower) {
        let ip = parse_ipv4(&lower).ok_or_else(invalid)?;
        return Ok(Host::Ip(IpAddr::V4(ip)));
    }
    let name = lower.strip_suffix('.').unwrap_or(&lower);
    let valid_label = |label: &str| {
        (1..=63).contains(&label.len())
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    if name.len() > 253 || !name.split('.').all(valid_label) {
        return Err(invalid());
    }
    Ok(Host::Name(name.to_owned()))
}

/// The URL Standard's "ends in a number" check
/// (<https://url.spec.whatwg.org/#ends-in-a-number-checker>): whether the
/// host's last label (ignoring one trailing dot) is all digits or an
/// [`ipv4_number`]. Such a host is an IPv4 address or nothing, never a name.
fn ends_in_a_number(host: &str) -> bool {
    let mut parts: Vec<&str> = host.split('.').collect();
    if parts.last() == Some(&"") {
        if parts.len() == 1 {
            return false;
        }
        parts.pop();
    }
    let last = parts.last().copied().unwrap_or_default();
    (!last.is_empty() && last.bytes().all(|b| b.is_ascii_digit())) || ipv4_number(last).is_some()
}

/// The URL Standard's IPv4 number parser: `0x`/`0X` and hexadecimal digits
/// (`0x` alone is 0), a leading `0` and octal digits, or decimal digits;
/// `None` where it fails. A value beyond `u64` fails too: it is beyond any
/// part of an IPv4 address.
fn ipv4_number(part: &str) -> Option<u64> {
    if part.is_empty() {
        return None;
    }
    let (digits, radix) = if let Some(hex) = part.strip_prefix("0x").or(part.strip_prefix("0X")) {
        (hex, 16)
    } else if part.len() >= 2 && part.starts_with('0') {
        (&part[1..], 8)
    } else {
        (part, 10)
    };
    digits.chars().try_fold(0u64, |value, c| {
        value
            .checked_mul(u64::from(radix))?
            .checked_add(u64::from(c.to_digit(radix)?))
    })
}

/// The URL Standard's IPv4 parser
/// (<https://url.spec.whatwg.org/#concept-ipv4-parser>): one to four
/// [`ipv4_number`]s (and one trailing dot), every one but the last at most
/// 255, the last filling the bytes that are left (`127.1` is `127.0.0.1`,
/// `2130706433` is too); `None` where it fails.
fn parse_ipv4(host: &str) -> Option<Ipv4Addr> {
    let mut parts: Vec<&str> = host.split('.').collect();
    if parts.len() > 1 && parts.last() == Some(&"") {
        parts.pop();
    }
    if parts.len() > 4 {
        return None;
    }
    let numbers: Vec<u64> = parts
        .iter()
        .map(|part| ipv4_number(part))
        .collect::<Option<_>>()?;
    let (last, leading) = numbers.split_last()?;
    if leading.iter().any(|n| *n > 255) || *last >= 1 << (8 * (4 - leading.len())) {
        return None;
    }
    let address = leading
        .iter()
        .enumerate()
        .fold(*last, |address, (i, n)| address + (n << (8 * (3 - i))));
    u32::try_from(address).ok().map(Ipv4Addr::from)
}

/// What an address is, if it is not a public unicast address (`None`).
/// IPv6 addresses that carry an IPv4 address are classified as it.
pub fn classify(ip: IpAddr) -> Option<Forbidden> {
    match ip {
        IpAddr::V4(ip) => classify_v4(ip),
        IpAddr::V6(ip) => classify_v6(ip),
    }
}

fn in_v4(ip: Ipv4Addr, network: [u8; 4], prefix: u32) -> bool {
    let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
    u32::from(ip) & mask == u32::from(Ipv4Addr::from(network)) & mask
}

fn classify_v4(ip: Ipv4Addr) -> Option<Forbidden> {
    const RANGES: &[([u8; 4], u32, Forbidden)] = &[
        ([0, 0, 0, 0], 8, Forbidden::Unspecified),
        ([10, 0, 0, 0], 8, Forbidden::Private),
        ([100, 64, 0, 0], 10, Forbidden::SharedAddressSpace),
        ([127, 0, 0, 0], 8, Forbidden::Loopback),
        ([169, 254, 0, 0], 16, Forbidden::LinkLocal),
        ([172, 16, 0, 0], 12, Forbidden::Private),
        ([192, 0, 0, 0], 24, Forbidden::Reserved),
        ([192, 0, 2, 0], 24, Forbidden::Documentation),
        ([192, 88, 99, 0], 24, Forbidden::Reserved),
        ([192, 168, 0, 0], 16, Forbidden::Private),
        ([198, 18, 0, 0], 15, Forbidden::Reserved),
        ([198, 51, 100, 0], 24, Forbidden::Documentation),
        ([203, 0, 113, 0], 24, Forbidden::Documentation),
        ([224, 0, 0, 0], 4, Forbidden::Multicast),
        ([255, 255, 255, 255], 32, Forbidden::Broadcast),
        ([240, 0, 0, 0], 4, Forbidden::Reserved),
    ];
    RANGES
        .iter()
        .find(|(network, prefix, _)| in_v4(ip, *network, *prefix))
        .map(|(_, _, class)| *class)
}

fn in_v6(ip: Ipv6Addr, network: [u16; 8], prefix: u32) -> bool {
    let mask = u128::MAX.checked_shl(128 - prefix).unwrap_or(0);
    u128::from(ip) & mask == u128::from(Ipv6Addr::from(network)) & mask
}

fn embedded_v4(bits: u128) -> Ipv4Addr {
    Ipv4Addr::from((bits & 0xffff_ffff) as u32)
}

fn classify_v6(ip: Ipv6Addr) -> Option<Forbidden> {
    let bits = u128::from(ip);
    if ip.is_unspecified() {
        return Some(Forbidden::Unspecified);
    }
    if ip.is_loopback() {
        return Some(Forbidden::Loopback);
    }
    // ::ffff:a.b.c.d (mapped) and ::a.b.c.d (compatible, deprecated), and
    // the well-known NAT64 prefix 64:ff9b::/96: the IPv4 address decides.
    if in_v6(ip, [0, 0, 0, 0, 0, 0xffff, 0, 0], 96)
        || in_v6(ip, [0; 8], 96)
        || in_v6(ip, [0x64, 0xff9b, 0, 0, 0, 0, 0, 0], 96)
    {
        return classify_v4(embedded_v4(bits));
    }
    // 6to4, 2002:a.b.c.d::/48: a relay would forward to the IPv4 address.
    if in_v6(ip, [0x2002, 0, 0, 0, 0, 0, 0, 0], 16) {
        return classify_v4(embedded_v4(bits >> 80));
    }
    const RANGES: &[([u16; 8], u32, Forbidden)] = &[
        ([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7, Forbidden::UniqueLocal),
        ([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10, Forbidden::LinkLocal),
        ([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10, Forbidden::LinkLocal),
        ([0xff00, 0, 0, 0, 0, 0, 0, 0], 8, Forbidden::Multicast),
        (
            [0x2001, 0xdb8, 0, 0, 0, 0, 0, 0],
            32,
            Forbidden::Documentation,
        ),
        ([0x2001, 0, 0, 0, 0, 0, 0, 0], 32, Forbidden::Reserved),
        ([0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48, Forbidden::Reserved),
    ];
    if let Some((_, _, class)) = RANGES
        .iter()
        .find(|(network, prefix, _)| in_v6(ip, *network, *prefix))
    {
        return Some(*class);
    }
    // Global unicast is 2000::/3; everything else (100::/64 discard, the
    // rest of ::/8, unassigned space) is not a receiver.
    if !in_v6(ip, [0x2000, 0, 0, 0, 0, 0, 0, 0], 3) {
        return Some(Forbidden::Reserved);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(text: &str) -> Option<Forbidden> {
        classify(IpAddr::V4(text.parse().unwrap()))
    }

    fn v6(text: &str) -> Option<Forbidden> {
        classify(IpAddr::V6(text.parse().unwrap()))
    }

    #[test]
    fn webhook_classify_ipv4_ranges_and_their_boundaries() {
        use Forbidden::*;
        let cases: &[(&str, Option<Forbidden>)] = &[
            ("0.0.0.0", Some(Unspecified)),
            ("0.255.255.255", Some(Unspecified)),
            ("1.0.0.0", None),
            ("9.255.255.255", None),
            ("10.0.0.0", Some(Private)),
            ("10.255.255.255", Some(Private)),
            ("11.0.0.0", None),
            ("100.63.255.255", None),
            ("100.64.0.0", Some(SharedAddressSpace)),
            ("100.127.255.255", Some(SharedAddressSpace)),
            ("100.128.0.0", None),
            ("126.255.255.255", None),
            ("127.0.0.0", Some(Loopback)),
            ("127.0.0.1", Some(Loopback)),
            ("127.255.255.255", Some(Loopback)),
            ("128.0.0.0", None),
            ("169.253.255.255", None),
            ("169.254.0.0", Some(LinkLocal)),
            ("169.254.169.254", Some(LinkLocal)),
            ("169.254.170.2", Some(LinkLocal)),
            ("169.254.255.255", Some(LinkLocal)),
            ("169.255.0.0", None),
            ("172.15.255.255", None),
            ("172.16.0.0", Some(Private)),
            ("172.31.255.255", Some(Private)),
            ("172.32.0.0", None),
            ("191.255.255.255", None),
            ("192.0.0.0", Some(Reserved)),
            ("192.0.0.255", Some(Reserved)),
            ("192.0.1.0", None),
            ("192.0.2.0", Some(Documentation)),
            ("192.0.2.255", Some(Documentation)),
            ("192.0.3.0", None),
            ("192.88.98.255", None),
            ("192.88.99.0", Some(Reserved)),
            ("192.88.99.255", Some(Reserved)),
            ("192.88.100.0", None),
            ("192.167.255.255", None),
            ("192.168.0.0", Some(Private)),
            ("192.168.255.255", Some(Private)),
            ("192.169.0.0", None),
            ("198.17.255.255", None),
            ("198.18.0.0", Some(Reserved)),
            ("198.19.255.255", Some(Reserved)),
            ("198.20.0.0", None),
            ("198.51.99.255", None),
            ("198.51.100.0", Some(Documentation)),
            ("198.51.100.255", Some(Documentation)),
            ("198.51.101.0", None),
            ("203.0.112.255", None),
            ("203.0.113.0", Some(Documentation)),
            ("203.0.113.255", Some(Documentation)),
            ("203.0.114.0", None),
            ("223.255.255.255", None),
            ("224.0.0.0", Some(Multicast)),
            ("239.255.255.255", Some(Multicast)),
            ("240.0.0.0", Some(Reserved)),
            ("255.255.255.254", Some(Reserved)),
            ("255.255.255.255", Some(Broadcast)),
            // Public addresses.
            ("1.1.1.1", None),
            ("8.8.8.8", None),
            ("52.94.76.1", None),
        ];
        for (addr, want) in cases {
            assert_eq!(v4(addr), *want, "{addr}");
        }
    }

    #[test]
    fn webhook_classify_ipv6_ranges_and_their_boundaries() {
        use Forbidden::*;
        let cases: &[(&str, Option<Forbidden>)] = &[
            ("::", Some(Unspecified)),
            ("::1", Some(Loopback)),
            // fc00::/7, with the metadata endpoint.
            ("fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Some(Reserved)),
            ("fc00::", Some(UniqueLocal)),
            ("fd00:ec2::254", Some(UniqueLocal)),
            ("fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Some(UniqueLocal)),
            ("fe00::", Some(Reserved)),
            ("fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Some(Reserved)),
            ("fe80::", Some(LinkLocal)),
            ("fe80::1", Some(LinkLocal)),
            ("febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Some(LinkLocal)),
            ("fec0::", Some(LinkLocal)),
            ("feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Some(LinkLocal)),
            ("ff00::", Some(Multicast)),
            ("ff02::1", Some(Multicast)),
            ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Some(Multicast)),
            ("2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", None),
            ("2001:db8::", Some(Documentation)),
            (
                "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff",
                Some(Documentation),
            ),
            ("2001:db9::", None),
            ("2001::", Some(Reserved)),
            ("2001:0:ffff:ffff:ffff:ffff:ffff:ffff", Some(Reserved)),
            ("2001:1::", None),
            ("100::", Some(Reserved)),
            ("1fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Some(Reserved)),
            ("2000::", None),
            ("3fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", None),
            ("4000::", Some(Reserved)),
            ("64:ff9b:1::", Some(Reserved)),
            // Public addresses.
            ("2606:4700:4700::1111", None),
            ("2a05:d018::1", None),
        ];
        for (addr, want) in cases {
            assert_eq!(v6(addr), *want, "{addr}");
        }
    }

    #[test]
    fn webhook_classify_ipv6_forms_carrying_ipv4_as_that_ipv4() {
        use Forbidden::*;
        let cases: &[(&str, Option<Forbidden>)] = &[
            // IPv4-mapped, ::ffff:0:0/96.
            ("::ffff:127.0.0.1", Some(Loopback)),
            ("::ffff:169.254.169.254", Some(LinkLocal)),
            ("::ffff:10.1.2.3", Some(Private)),
            ("::ffff:0.0.0.0", Some(Unspecified)),
            ("::ffff:255.255.255.255", Some(Broadcast)),
            ("::ffff:8.8.8.8", None),
            // IPv4-compatible, ::/96 (:: and ::1 are themselves).
            ("::127.0.0.2", Some(Loopback)),
            ("::169.254.170.2", Some(LinkLocal)),
            ("::192.168.1.1", Some(Private)),
            ("::8.8.8.8", None),
            // Just outside ::/96 and ::ffff:0:0/96.
            ("::1:0:0", Some(Reserved)),
            ("::fffe:808:808", Some(Reserved)),
            ("::1:ffff:808:808", Some(Reserved)),
            // NAT64, 64:ff9b::/96.
            ("64:ff9b::a9fe:a9fe", Some(LinkLocal)),
            ("64:ff9b::7f00:1", Some(Loopback)),
            ("64:ff9b::100.64.0.1", Some(SharedAddressSpace)),
            ("64:ff9b::8.8.8.8", None),
            ("64:ff9b::1:0:0", Some(Reserved)),
            // 6to4, 2002::/16: the IPv4 address is in bits 16 to 48.
            ("2002:a9fe:a9fe::1", Some(LinkLocal)),
            ("2002:c0a8:0101::", Some(Private)),
            ("2002:0808:0808::1", None),
        ];
        for (addr, want) in cases {
            assert_eq!(v6(addr), *want, "{addr}");
        }
    }

    fn parse(text: &str) -> Result<CallbackUrl, CallbackError> {
        CallbackUrl::parse(text, CallbackPolicy::default())
    }

    #[test]
    fn webhook_url_accepts_public_https_and_fills_in_the_defaults() {
        let url = parse("https://Hooks.Example.COM./jobs?x=1").unwrap();
        assert_eq!(url.scheme(), Scheme::Https);
        assert_eq!(url.host(), &Host::Name("hooks.example.com".to_owned()));
        assert_eq!(url.port(), 443);
        assert_eq!(url.path_and_query(), "/jobs?x=1");
        assert_eq!(url.host_header(), "hooks.example.com");
        assert_eq!(url.to_string(), "https://hooks.example.com/jobs?x=1");

        let url = parse("https://hooks.example.com:8443").unwrap();
        assert_eq!(url.port(), 8443);
        assert_eq!(url.path_and_query(), "/");
        assert_eq!(url.host_header(), "hooks.example.com:8443");

        let url = parse("https://[2606:4700:4700::1111]/h").unwrap();
        assert_eq!(
            url.host(),
            &Host::Ip("2606:4700:4700::1111".parse().unwrap())
        );
        assert_eq!(url.host_header(), "[2606:4700:4700::1111]");
        let url = parse("https://[2606:4700:4700::1111]:65535/h").unwrap();
        assert_eq!(url.port(), 65535);
        assert_eq!(url.host_header(), "[2606:4700:4700::1111]:65535");
        assert!(parse("https://8.8.8.8/h").is_ok());
        assert!(parse("https://xn--bcher-kva.example/").is_ok());
    }

    #[test]
    fn webhook_url_refuses_bad_forms() {
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_BYTES));
        assert!(matches!(parse(&long), Err(CallbackError::TooLong(_))));
        let just_fits = format!("https://example.com/{}", "a".repeat(MAX_URL_BYTES - 20));
        assert_eq!(just_fits.len(), MAX_URL_BYTES);
        assert!(parse(&just_fits).is_ok());

        for (text, what) in [
            ("http://example.com/", "plain http"),
            ("ftp://example.com/", "another scheme"),
            ("file:///etc/passwd", "a file"),
            ("example.com/hook", "no scheme"),
            ("/hook", "a path"),
            ("", "nothing"),
            ("https://user:pass@example.com/", "user information"),
            ("https://user@example.com/", "a user name"),
            ("https://example.com/#frag", "a fragment"),
            ("https://:443/", "no host"),
            ("https://example.com:0/", "port 0"),
            ("https://example.com:/", "an empty port"),
            ("https://example.com:99999/", "a port out of range"),
            ("https://example.com:65536/", "a port just out of range"),
            ("https://example.com:+443/", "a signed port"),
            (
                "https://[2606:4700:4700::1111]:99999/",
                "an IPv6 host's port out of range",
            ),
            ("https://exa_mple.com/", "an underscore"),
            ("https://-example.com/", "a label starting with -"),
            ("https://example..com/", "an empty label"),
            ("https://[::1/", "an unclosed bracket"),
            ("https://[example.com]/", "a name in brackets"),
            ("https://bücher.example/", "a non-ASCII name"),
        ] {
            assert!(parse(text).is_err(), "{what}: {text} was accepted");
        }
        let label = "a".repeat(64);
        assert!(parse(&format!("https://{label}.example.com/")).is_err());
        let name = vec!["a".repeat(63); 4].join(".");
        assert_eq!(name.len(), 255);
        assert!(parse(&format!("https://{name}/")).is_err());
    }

    #[test]
    fn webhook_url_refuses_literal_addresses_that_are_not_public() {
        for text in [
            "https://127.0.0.1/",
            "https://169.254.169.254/latest/meta-data/",
            "https://169.254.170.2/v2/credentials",
            "https://10.0.0.1/",
            "https://[::1]/",
            "https://[fd00:ec2::254]/",
            "https://[::ffff:169.254.169.254]/",
            "https://[64:ff9b::a9fe:a9fe]/",
            "https://0.0.0.0/",
        ] {
            assert!(
                matches!(parse(text), Err(CallbackError::Forbidden { .. })),
                "{text}"
            );
        }
    }

    #[test]
    fn webhook_url_reads_a_numeric_host_as_the_url_standard_does() {
        for (text, want) in [
            ("https://8.8.8.8/", "8.8.8.8"),
            ("https://8.8.8.8./", "8.8.8.8"),
            ("https://134744072/", "8.8.8.8"),
            ("https://0x08080808/", "8.8.8.8"),
            ("https://0X8.0X8.0x8.0X8/", "8.8.8.8"),
            ("https://010.010.010.010/", "8.8.8.8"),
            ("https://8.8.2056/", "8.8.8.8"),
            ("https://8.526344/", "8.8.8.8"),
            ("https://0x8.010.2056/", "8.8.8.8"),
            ("https://00000000000000000000010.8.8.8/", "8.8.8.8"),
            ("https://0x00000000000000000000008.8.8.8:8443/", "8.8.8.8"),
        ] {
            let url = parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(url.host(), &Host::Ip(want.parse().unwrap()), "{text}");
            assert_eq!(url.host_header().split(':').next(), Some(want), "{text}");
        }
        // Numeric-looking hosts that are no IPv4 address are no host at all.
        for text in [
            "https://256.0.0.1/",
            "https://1.2.3.256/",
            "https://1.2.65536/",
            "https://4294967296/",
            "https://0x100000000/",
            "https://1.2.3.4.5/",
            "https://09.1.1.1/",
            "https://0xg.1.1.1/",
            "https://1..1/",
            "https://.1/",
            "https://example.0x1/",
            "https://example.123/",
            "https://99999999999999999999999999/",
        ] {
            assert!(
                matches!(parse(text), Err(CallbackError::InvalidHost(_))),
                "{text}: {:?}",
                parse(text)
            );
        }
        // A last label that is no number keeps a name a name.
        for text in [
            "https://0x7f.example/",
            "https://example.0x1g/",
            "https://1e3.example/",
        ] {
            assert!(
                matches!(parse(text).map(|u| u.host().clone()), Ok(Host::Name(_))),
                "{text}"
            );
        }
    }

    #[test]
    fn webhook_url_refuses_every_spelling_of_an_address_that_is_not_public() {
        use Forbidden::*;
        for (text, class) in [
            ("https://0x7f000001/", Loopback),
            ("https://0X7F000001/", Loopback),
            ("https://127.1/", Loopback),
            ("https://127.1./", Loopback),
            ("https://2130706433/", Loopback),
            ("https://0177.0.0.1/", Loopback),
            ("https://0x7f.1/", Loopback),
            ("https://0x7f.0.0.1/", Loopback),
            ("https://127.0.0.0x1/", Loopback),
            ("https://0x7f.0.00000001/", Loopback),
            ("https://017700000001/", Loopback),
            ("https://0/", Unspecified),
            ("https://0x/", Unspecified),
            ("https://0xa9.0xfe.0xa9.0xfe/", LinkLocal),
            ("https://169.254.43518/", LinkLocal),
            ("https://2852039166/", LinkLocal),
            ("https://0251.0376.0252.2/", LinkLocal),
            ("https://10.1/", Private),
            ("https://0xc0a80001/", Private),
            ("https://[::ffff:127.0.0.1]/", Loopback),
            ("https://[::ffff:7f00:1]/", Loopback),
            ("https://[0:0:0:0:0:FFFF:7F00:1]/", Loopback),
            ("https://[::127.0.0.1]/", Loopback),
            ("https://[::ffff:a9fe:a9fe]/", LinkLocal),
        ] {
            match parse(text) {
                Err(CallbackError::Forbidden { class: got, .. }) => {
                    assert_eq!(got, class, "{text}")
                }
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    #[test]
    fn webhook_url_local_policy_judges_the_address_not_its_spelling() {
        // Any spelling of 127.0.0.1 is 127.0.0.1: http is allowed to it.
        for text in [
            "http://0x7f000001:9000/h",
            "http://127.1:9000/h",
            "http://2130706433:9000/h",
            "http://0177.0.0.1:9000/h",
        ] {
            let url = CallbackUrl::parse(text, CallbackPolicy::LOCAL).unwrap();
            assert_eq!(url.scheme(), Scheme::Http, "{text}");
            assert_eq!(url.host_header(), "127.0.0.1:9000", "{text}");
        }
        // Other loopback addresses only over https, whatever their spelling;
        // an IPv6 form of 127.0.0.1 is not 127.0.0.1.
        for text in [
            "http://127.2/",
            "http://0x7f000002/",
            "http://[::ffff:127.0.0.1]/",
        ] {
            assert!(
                matches!(
                    CallbackUrl::parse(text, CallbackPolicy::LOCAL),
                    Err(CallbackError::Scheme(_))
                ),
                "{text}"
            );
        }
        assert!(CallbackUrl::parse("https://0x7f000002/", CallbackPolicy::LOCAL).is_ok());
        // Loopback is still all the local policy opens.
        assert!(CallbackUrl::parse("https://0xa9fea9fe/", CallbackPolicy::LOCAL).is_err());
    }

    #[test]
    fn webhook_url_http_only_to_loopback_under_the_local_policy() {
        for text in [
            "http://127.0.0.1:9000/h",
            "http://[::1]:9000/h",
            "http://localhost:9000/h",
        ] {
            let url = CallbackUrl::parse(text, CallbackPolicy::LOCAL).unwrap();
            assert_eq!(url.scheme(), Scheme::Http, "{text}");
            assert!(
                matches!(parse(text), Err(CallbackError::Scheme(_))),
                "{text}"
            );
        }
        let url = CallbackUrl::parse("http://localhost/h", CallbackPolicy::LOCAL).unwrap();
        assert_eq!(url.port(), 80);
        for text in [
            "http://example.com/",
            "http://127.0.0.2/",
            "http://8.8.8.8/",
        ] {
            assert!(
                CallbackUrl::parse(text, CallbackPolicy::LOCAL).is_err(),
                "{text}"
            );
        }
        // Loopback over https needs allow_loopback only.
        let policy = CallbackPolicy {
            allow_loopback: true,
            allow_http_loopback: false,
        };
        assert!(CallbackUrl::parse("https://127.0.0.1:8443/", policy).is_ok());
        assert!(CallbackUrl::parse("http://127.0.0.1:8080/", policy).is_err());
        // Loopback is the only range either knob opens.
        assert!(CallbackUrl::parse("https://10.0.0.1/", CallbackPolicy::LOCAL).is_err());
    }

    #[tokio::test]
    async fn webhook_resolve_refuses_loopback_names_unless_allowed() {
        let url = parse("https://localhost:8443/hook").unwrap();
        let error = url.resolve().await.unwrap_err();
        assert!(
            matches!(
                error,
                CallbackError::Forbidden {
                    class: Forbidden::Loopback,
                    ..
                }
            ),
            "{error}"
        );
        assert!(error.is_refusal());

        let url = CallbackUrl::parse("https://localhost:8443/hook", CallbackPolicy::LOCAL).unwrap();
        let addr = url.resolve().await.unwrap();
        assert!(addr.ip().is_loopback());
        assert_eq!(addr.port(), 8443);
    }

    #[tokio::test]
    async fn webhook_resolve_returns_a_literal_address_without_a_lookup() {
        let url = parse("https://8.8.8.8:8443/").unwrap();
        assert_eq!(
            url.resolve().await.unwrap(),
            "8.8.8.8:8443".parse::<SocketAddr>().unwrap()
        );
    }

    #[tokio::test]
    async fn webhook_resolve_failure_is_not_a_refusal() {
        // .invalid never resolves (RFC 6761), with or without a network.
        let url = parse("https://jobline-test.invalid/").unwrap();
        let error = url.resolve().await.unwrap_err();
        assert!(!error.is_refusal(), "{error}");
    }

    #[test]
    fn webhook_policy_is_strict_by_default() {
        assert_eq!(
            CallbackPolicy::default(),
            CallbackPolicy {
                allow_loopback: false,
                allow_http_loopback: false
            }
        );
    }
}
