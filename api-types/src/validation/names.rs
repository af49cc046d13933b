//! Format checks for names, label keys and values, ports and IPs.
//!
//! Each returns the list of what is wrong (empty when valid), worded as
//! Kubernetes' `apimachinery/pkg/util/validation` words it, so callers can
//! wrap each message in a field error.

use std::borrow::Cow;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::LazyLock;

use regex::Regex;

/// Longest DNS-1123 label (RFC 1123).
pub const DNS1123_LABEL_MAX_LENGTH: usize = 63;
/// Longest DNS-1123 subdomain.
pub const DNS1123_SUBDOMAIN_MAX_LENGTH: usize = 253;
/// Longest DNS-1035 label.
pub const DNS1035_LABEL_MAX_LENGTH: usize = 63;
/// Longest name part of a qualified name (label and annotation keys).
pub const QUALIFIED_NAME_MAX_LENGTH: usize = 63;
/// Longest label value.
pub const LABEL_VALUE_MAX_LENGTH: usize = 63;
/// Longest port name (IANA_SVC_NAME, RFC 6335).
pub const PORT_NAME_MAX_LENGTH: usize = 15;

const DNS1123_LABEL_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
const DNS1123_LABEL_ERR_MSG: &str = "a lowercase RFC 1123 label must consist of lower case \
     alphanumeric characters or '-', and must start and end with an alphanumeric character";
const DNS1123_SUBDOMAIN_FMT: &str =
    "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const DNS1123_SUBDOMAIN_ERR_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower \
     case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric \
     character";
const DNS1035_LABEL_FMT: &str = "[a-z]([-a-z0-9]*[a-z0-9])?";
const DNS1035_LABEL_ERR_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric \
     characters or '-', start with an alphabetic character, and end with an alphanumeric \
     character";
const QUALIFIED_NAME_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const QUALIFIED_NAME_ERR_MSG: &str = "must consist of alphanumeric characters, '-', '_' or '.', \
     and must start and end with an alphanumeric character";
const LABEL_VALUE_FMT: &str = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";
const LABEL_VALUE_ERR_MSG: &str = "a valid label must be an empty string or consist of \
     alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric \
     character";
const CONFIG_MAP_KEY_FMT: &str = "[-._a-zA-Z0-9]+";
const CONFIG_MAP_KEY_ERR_MSG: &str =
    "a valid config key must consist of alphanumeric characters, '-', '_' or '.'";
const HTTP_HEADER_NAME_FMT: &str = "[-A-Za-z0-9]+";
const HTTP_HEADER_NAME_ERR_MSG: &str =
    "a valid HTTP header must consist of alphanumeric characters or '-'";
const RELAXED_ENV_VAR_NAME_ERR_MSG: &str =
    "a valid environment variable name must consist only of printable ASCII characters other than '='";
const IP_ERR_MSG: &str = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)";

// The patterns are the constants above, each covered by the tests: they
// always compile.
#[allow(clippy::expect_used)]
fn anchored(pattern: &str) -> Regex {
    Regex::new(&format!("^(?:{pattern})$")).expect("constant regex compiles")
}

static DNS1123_LABEL_RE: LazyLock<Regex> = LazyLock::new(|| anchored(DNS1123_LABEL_FMT));
static DNS1123_SUBDOMAIN_RE: LazyLock<Regex> = LazyLock::new(|| anchored(DNS1123_SUBDOMAIN_FMT));
static DNS1035_LABEL_RE: LazyLock<Regex> = LazyLock::new(|| anchored(DNS1035_LABEL_FMT));
static QUALIFIED_NAME_RE: LazyLock<Regex> = LazyLock::new(|| anchored(QUALIFIED_NAME_FMT));
static LABEL_VALUE_RE: LazyLock<Regex> = LazyLock::new(|| anchored(LABEL_VALUE_FMT));
static CONFIG_MAP_KEY_RE: LazyLock<Regex> = LazyLock::new(|| anchored(CONFIG_MAP_KEY_FMT));
static HTTP_HEADER_NAME_RE: LazyLock<Regex> = LazyLock::new(|| anchored(HTTP_HEADER_NAME_FMT));

/// `must be no more than N characters`.
fn max_len_error(length: usize) -> String {
    format!("must be no more than {length} characters")
}

/// Kubernetes' `RegexError`: the message, examples and the regex.
fn regex_error(msg: &str, fmt: &str, examples: &[&str]) -> String {
    if examples.is_empty() {
        return format!("{msg} (regex used for validation is '{fmt}')");
    }
    let mut out = format!("{msg} (e.g. ");
    for (i, example) in examples.iter().enumerate() {
        if i > 0 {
            out.push_str(" or ");
        }
        out.push('\'');
        out.push_str(example);
        out.push_str("', ");
    }
    out.push_str("regex used for validation is '");
    out.push_str(fmt);
    out.push_str("')");
    out
}

/// `prefix` and five characters picked by `random` from Kubernetes'
/// `SafeEncodeString` alphabet (no vowels, no look-alikes), as its
/// `generateName` names objects: 27^5 (14 million) suffixes. The
/// replication manager names its pods this way too: with five hex digits
/// (a million suffixes) every other RC of 1,000 pods hit a taken name, 16
/// failed creates in a 30,000-pod run.
pub fn generated_name(prefix: &str, random: [u8; 16]) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let suffix: String = random
        .iter()
        .take(5)
        .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
        .collect();
    format!("{prefix}{suffix}")
}

/// `must be between LO and HI, inclusive`.
pub fn inclusive_range_error(lo: i64, hi: i64) -> String {
    format!("must be between {lo} and {hi}, inclusive")
}

/// A DNS-1123 label (`my-name`): lower case alphanumerics and '-', at most 63.
/// Used for container, volume and namespace names.
pub fn is_dns1123_label(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > DNS1123_LABEL_MAX_LENGTH {
        errs.push(max_len_error(DNS1123_LABEL_MAX_LENGTH));
    }
    if !DNS1123_LABEL_RE.is_match(value) {
        if DNS1123_SUBDOMAIN_RE.is_match(value) {
            // A valid subdomain but not a label: it has dots.
            errs.push("must not contain dots".to_string());
        } else {
            errs.push(regex_error(
                DNS1123_LABEL_ERR_MSG,
                DNS1123_LABEL_FMT,
                &["my-name", "123-abc"],
            ));
        }
    }
    errs
}

/// A DNS-1123 subdomain (`example.com`): dot-separated labels, at most 253.
/// Used for most object names.
pub fn is_dns1123_subdomain(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > DNS1123_SUBDOMAIN_MAX_LENGTH {
        errs.push(max_len_error(DNS1123_SUBDOMAIN_MAX_LENGTH));
    }
    if !DNS1123_SUBDOMAIN_RE.is_match(value) {
        errs.push(regex_error(
            DNS1123_SUBDOMAIN_ERR_MSG,
            DNS1123_SUBDOMAIN_FMT,
            &["example.com"],
        ));
    }
    errs
}

/// A DNS-1035 label (`my-name`): like a DNS-1123 label but starting with a
/// letter. Used for service names.
pub fn is_dns1035_label(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > DNS1035_LABEL_MAX_LENGTH {
        errs.push(max_len_error(DNS1035_LABEL_MAX_LENGTH));
    }
    if !DNS1035_LABEL_RE.is_match(value) {
        errs.push(regex_error(
            DNS1035_LABEL_ERR_MSG,
            DNS1035_LABEL_FMT,
            &["my-name", "abc-123"],
        ));
    }
    errs
}

/// A qualified name (`example.com/MyName`): an optional DNS subdomain prefix
/// and '/', then a name of at most 63 alphanumerics, '-', '_' or '.'.
/// Used for label and annotation keys.
pub fn is_qualified_name(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let parts: Vec<&str> = value.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push("prefix part must be non-empty".to_string());
            } else {
                errs.extend(
                    is_dns1123_subdomain(prefix)
                        .into_iter()
                        .map(|m| format!("prefix part {m}")),
                );
            }
            *name
        }
        _ => {
            errs.push(format!(
                "a qualified name {} with an optional DNS subdomain prefix and '/' (e.g. \
                 'example.com/MyName')",
                regex_error(
                    QUALIFIED_NAME_ERR_MSG,
                    QUALIFIED_NAME_FMT,
                    &["MyName", "my.name", "123-abc"]
                )
            ));
            return errs;
        }
    };
    if name.is_empty() {
        errs.push("name part must be non-empty".to_string());
    } else if name.len() > QUALIFIED_NAME_MAX_LENGTH {
        errs.push(format!(
            "name part {}",
            max_len_error(QUALIFIED_NAME_MAX_LENGTH)
        ));
    }
    if !QUALIFIED_NAME_RE.is_match(name) {
        errs.push(format!(
            "name part {}",
            regex_error(
                QUALIFIED_NAME_ERR_MSG,
                QUALIFIED_NAME_FMT,
                &["MyName", "my.name", "123-abc"]
            )
        ));
    }
    errs
}

/// A label value: empty, or at most 63 alphanumerics, '-', '_' or '.',
/// starting and ending with an alphanumeric.
pub fn is_valid_label_value(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > LABEL_VALUE_MAX_LENGTH {
        errs.push(max_len_error(LABEL_VALUE_MAX_LENGTH));
    }
    if !LABEL_VALUE_RE.is_match(value) {
        errs.push(regex_error(
            LABEL_VALUE_ERR_MSG,
            LABEL_VALUE_FMT,
            &["MyValue", "my_value", "12345"],
        ));
    }
    errs
}

/// A label value as 2014 manifests wrote them: a valid label value, or a
/// comma-separated list of non-empty valid label values
/// (`redisslave,redis-master`), at most 63 characters in all.
///
/// Only for object labels; selectors keep [`is_valid_label_value`].
pub fn is_legacy_label_value(value: &str) -> Vec<String> {
    let strict = is_valid_label_value(value);
    if strict.is_empty() || !value.contains(',') || value.len() > LABEL_VALUE_MAX_LENGTH {
        return strict;
    }
    if value
        .split(',')
        .all(|part| !part.is_empty() && is_valid_label_value(part).is_empty())
    {
        Vec::new()
    } else {
        strict
    }
}

/// An IANA_SVC_NAME (RFC 6335): at most 15 of `[-a-z0-9]`, at least one
/// letter, no leading, trailing or doubled '-'. Used for container port
/// names and named target ports.
pub fn is_valid_port_name(port: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if port.len() > PORT_NAME_MAX_LENGTH {
        errs.push(max_len_error(PORT_NAME_MAX_LENGTH));
    }
    let charset_ok = !port.is_empty()
        && port
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !charset_ok {
        errs.push(
            "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)".to_string(),
        );
    } else if !port.bytes().any(|b| b.is_ascii_lowercase()) {
        errs.push("must contain at least one letter (a-z)".to_string());
    }
    if port.contains("--") {
        errs.push("must not contain consecutive hyphens".to_string());
    }
    if port.starts_with('-') || port.ends_with('-') {
        errs.push("must not begin or end with a hyphen".to_string());
    }
    errs
}

/// A port number, 1..=65535.
pub fn is_valid_port_num(port: i32) -> Vec<String> {
    if (1..=65535).contains(&port) {
        Vec::new()
    } else {
        vec![inclusive_range_error(1, 65535)]
    }
}

/// An environment variable name under Kubernetes' current rule
/// (`RelaxedEnvironmentVariableValidation`, on by default since 1.32):
/// non-empty printable ASCII without '='.
pub fn is_env_var_name(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.is_empty() {
        errs.push("environment variable name must be non-empty".to_string());
    }
    if value
        .chars()
        .any(|c| !c.is_ascii() || c.is_ascii_control() || c == '=')
    {
        errs.push(RELAXED_ENV_VAR_NAME_ERR_MSG.to_string());
    }
    errs
}

/// A key of a ConfigMap or Secret: `[-._a-zA-Z0-9]+`, at most 253, not `.`,
/// `..` or starting with `..`.
pub fn is_config_map_key(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > DNS1123_SUBDOMAIN_MAX_LENGTH {
        errs.push(max_len_error(DNS1123_SUBDOMAIN_MAX_LENGTH));
    }
    if !CONFIG_MAP_KEY_RE.is_match(value) {
        errs.push(regex_error(
            CONFIG_MAP_KEY_ERR_MSG,
            CONFIG_MAP_KEY_FMT,
            &["key.name", "KEY_NAME", "key-name"],
        ));
    }
    if value == "." {
        errs.push("must not be '.'".to_string());
    } else if value == ".." {
        errs.push("must not be '..'".to_string());
    } else if value.starts_with("..") {
        errs.push("must not start with '..'".to_string());
    }
    errs
}

/// An HTTP header name: `[-A-Za-z0-9]+`.
pub fn is_http_header_name(value: &str) -> Vec<String> {
    if HTTP_HEADER_NAME_RE.is_match(value) {
        Vec::new()
    } else {
        vec![regex_error(
            HTTP_HEADER_NAME_ERR_MSG,
            HTTP_HEADER_NAME_FMT,
            &["X-Header-Name"],
        )]
    }
}

/// An IPv4 or IPv6 address in canonical text form (`10.9.8.7`, `2001:db8::1`).
/// IPv4 octets with leading zeros are rejected (as Kubernetes' strict mode).
pub fn is_valid_ip(value: &str) -> Vec<String> {
    if value.parse::<IpAddr>().is_ok() {
        Vec::new()
    } else {
        vec![IP_ERR_MSG.to_string()]
    }
}

/// A valid IP that an endpoint or external IP may use: not unspecified,
/// loopback, link-local or link-local multicast (Kubernetes'
/// `ValidateNonSpecialIP`).
pub fn is_non_special_ip(value: &str) -> Vec<String> {
    special_ip_errors(value, false)
}

/// [`is_non_special_ip`], optionally letting loopback addresses through.
pub(crate) fn special_ip_errors(value: &str, allow_loopback: bool) -> Vec<String> {
    let Ok(ip) = value.parse::<IpAddr>() else {
        return vec!["must be a valid IP address".to_string()];
    };
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    let mut errs = Vec::new();
    if ip.is_unspecified() {
        errs.push(format!("may not be unspecified ({value})"));
    }
    if ip.is_loopback() && !allow_loopback {
        errs.push("may not be in the loopback range (127.0.0.0/8, ::1/128)".to_string());
    }
    let (link_local, link_local_multicast) = match ip {
        IpAddr::V4(v4) => (v4.is_link_local(), is_v4_link_local_multicast(v4)),
        IpAddr::V6(v6) => (is_v6_link_local(v6), is_v6_link_local_multicast(v6)),
    };
    if link_local {
        errs.push("may not be in the link-local range (169.254.0.0/16, fe80::/10)".to_string());
    }
    if link_local_multicast {
        errs.push(
            "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)".to_string(),
        );
    }
    errs
}

fn is_v4_link_local_multicast(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    a == 224 && b == 0 && c == 0
}

fn is_v6_link_local(ip: Ipv6Addr) -> bool {
    (ip.segments()[0] & 0xffc0) == 0xfe80
}

fn is_v6_link_local_multicast(ip: Ipv6Addr) -> bool {
    let [a, b, ..] = ip.octets();
    a == 0xff && (b & 0x0f) == 0x02
}

/// `generateName` prefixes may end in '-': check them as if it were a letter.
fn mask_trailing_dash(name: &str) -> Cow<'_, str> {
    match name.strip_suffix('-') {
        Some(head) if !head.is_empty() => Cow::Owned(format!("{head}a")),
        _ => Cow::Borrowed(name),
    }
}

/// An object name that must be a DNS subdomain; with `prefix`, a
/// `generateName` prefix (a trailing '-' is allowed).
pub fn name_is_dns_subdomain(name: &str, prefix: bool) -> Vec<String> {
    if prefix {
        is_dns1123_subdomain(&mask_trailing_dash(name))
    } else {
        is_dns1123_subdomain(name)
    }
}

/// An object name that must be a DNS label (namespaces).
pub fn name_is_dns_label(name: &str, prefix: bool) -> Vec<String> {
    if prefix {
        is_dns1123_label(&mask_trailing_dash(name))
    } else {
        is_dns1123_label(name)
    }
}

/// An object name that must be a DNS-1035 label (services).
pub fn name_is_dns1035_label(name: &str, prefix: bool) -> Vec<String> {
    if prefix {
        is_dns1035_label(&mask_trailing_dash(name))
    } else {
        is_dns1035_label(name)
    }
}

/// A DNS subdomain in which upper case letters are also allowed: the names
/// 2014 manifests gave pods and replication controllers
/// (`frontendController`), which v0.5 never checked. Everything else (length,
/// characters, dots, '-' placement) is checked as for a DNS subdomain.
pub fn name_is_dns_subdomain_any_case(name: &str, prefix: bool) -> Vec<String> {
    name_is_dns_subdomain(&name.to_ascii_lowercase(), prefix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns1123_label() {
        assert!(is_dns1123_label("my-name").is_empty());
        assert!(is_dns1123_label("123-abc").is_empty());
        assert!(is_dns1123_label("a").is_empty());
        assert!(is_dns1123_label(&"a".repeat(63)).is_empty());
        assert_eq!(
            is_dns1123_label(&"a".repeat(64)),
            vec!["must be no more than 63 characters"]
        );
        assert_eq!(is_dns1123_label("a.b"), vec!["must not contain dots"]);
        assert_eq!(
            is_dns1123_label("My_Name"),
            vec![
                "a lowercase RFC 1123 label must consist of lower case alphanumeric characters \
                 or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  \
                 or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
            ]
        );
        for bad in ["", "-a", "a-", "A", "a b", "ä"] {
            assert_eq!(is_dns1123_label(bad).len(), 1, "{bad:?}");
        }
    }

    #[test]
    fn dns1123_subdomain() {
        for good in ["example.com", "a", "a-b.c-d", "10.245.1.3", "abc.123"] {
            assert!(is_dns1123_subdomain(good).is_empty(), "{good}");
        }
        for bad in ["", ".a", "a.", "a..b", "A.com", "a_b", "-a.b"] {
            assert_eq!(is_dns1123_subdomain(bad).len(), 1, "{bad:?}");
        }
        let long = vec!["a".repeat(63); 4].join(".");
        assert_eq!(long.len(), 255);
        assert_eq!(
            is_dns1123_subdomain(&long),
            vec!["must be no more than 253 characters"]
        );
        assert!(is_dns1123_subdomain(&"a".repeat(64)).is_empty());
    }

    #[test]
    fn dns1035_label() {
        assert!(is_dns1035_label("redis-master").is_empty());
        assert!(is_dns1035_label("a1").is_empty());
        let errs = is_dns1035_label("1abc");
        assert_eq!(errs.len(), 1);
        assert!(errs[0].starts_with("a DNS-1035 label must consist of"));
        assert!(errs[0].ends_with("regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"));
        assert_eq!(is_dns1035_label(&"a".repeat(64)).len(), 1);
        assert_eq!(is_dns1035_label("a.b").len(), 1);
    }

    #[test]
    fn qualified_names() {
        for good in [
            "name",
            "MyName",
            "my.name",
            "123-abc",
            "a_b",
            "example.com/MyName",
            "kubernetes.io/metadata.name",
            "a/b",
        ] {
            assert!(is_qualified_name(good).is_empty(), "{good}");
        }
        assert_eq!(is_qualified_name("").len(), 2, "empty and regex");
        assert_eq!(
            is_qualified_name("/a"),
            vec!["prefix part must be non-empty"]
        );
        assert!(is_qualified_name("Example.com/a")[0]
            .starts_with("prefix part a lowercase RFC 1123 subdomain"));
        assert!(is_qualified_name("a/b/c")[0].starts_with("a qualified name must consist of"));
        assert_eq!(
            is_qualified_name(&"a".repeat(64)),
            vec!["name part must be no more than 63 characters"]
        );
        assert!(is_qualified_name("foo bar")[0].starts_with("name part must consist of"));
        assert_eq!(is_qualified_name("a/").len(), 2);
        assert_eq!(is_qualified_name("-a").len(), 1);
    }

    #[test]
    fn label_values() {
        for good in ["", "v", "MyValue", "my_value", "12345", "a.b-c_d"] {
            assert!(is_valid_label_value(good).is_empty(), "{good}");
        }
        for bad in ["-a", "a-", "a b", "a,b", "a/b"] {
            assert_eq!(is_valid_label_value(bad).len(), 1, "{bad:?}");
        }
        assert_eq!(
            is_valid_label_value(&"a".repeat(64)),
            vec!["must be no more than 63 characters"]
        );
    }

    #[test]
    fn legacy_label_values_allow_comma_lists_only() {
        assert!(is_legacy_label_value("redisslave,redis-master").is_empty());
        assert!(is_legacy_label_value("plain").is_empty());
        assert_eq!(is_legacy_label_value("a,,b").len(), 1);
        assert_eq!(is_legacy_label_value(",a").len(), 1);
        assert_eq!(is_legacy_label_value("a,b c").len(), 1);
        assert!(!is_legacy_label_value(&format!("a,{}", "b".repeat(63))).is_empty());
    }

    #[test]
    fn port_names() {
        for good in [
            "http",
            "http-server",
            "h2c",
            "a1",
            "x-y-z",
            "abcdefghijklmno",
        ] {
            assert!(is_valid_port_name(good).is_empty(), "{good}");
        }
        assert_eq!(
            is_valid_port_name("abcdefghijklmnop"),
            vec!["must be no more than 15 characters"]
        );
        assert_eq!(
            is_valid_port_name("123"),
            vec!["must contain at least one letter (a-z)"]
        );
        assert_eq!(
            is_valid_port_name("HTTP"),
            vec!["must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)"]
        );
        assert_eq!(
            is_valid_port_name("a--b"),
            vec!["must not contain consecutive hyphens"]
        );
        assert_eq!(
            is_valid_port_name("-ab"),
            vec!["must not begin or end with a hyphen"]
        );
        assert_eq!(is_valid_port_name("").len(), 1);
    }

    #[test]
    fn port_numbers() {
        assert!(is_valid_port_num(1).is_empty());
        assert!(is_valid_port_num(65535).is_empty());
        assert_eq!(
            is_valid_port_num(0),
            vec!["must be between 1 and 65535, inclusive"]
        );
        assert_eq!(is_valid_port_num(65536).len(), 1);
        assert_eq!(is_valid_port_num(-1).len(), 1);
    }

    #[test]
    fn env_var_names() {
        for good in ["PATH", "my.env-name", "MY_ENV.NAME", "1ABC", "a b", "$x"] {
            assert!(is_env_var_name(good).is_empty(), "{good}");
        }
        assert_eq!(
            is_env_var_name("A=B"),
            vec!["a valid environment variable name must consist only of printable ASCII characters other than '='"]
        );
        assert_eq!(is_env_var_name("tab\there").len(), 1);
        assert_eq!(is_env_var_name("é").len(), 1);
        assert_eq!(
            is_env_var_name(""),
            vec!["environment variable name must be non-empty"]
        );
    }

    #[test]
    fn config_map_keys() {
        assert!(is_config_map_key("key.name").is_empty());
        assert_eq!(is_config_map_key(".."), vec!["must not be '..'"]);
        assert_eq!(is_config_map_key("..a"), vec!["must not start with '..'"]);
        assert_eq!(is_config_map_key("a/b").len(), 1);
    }

    #[test]
    fn ips() {
        for good in ["10.9.8.7", "2001:db8::ffff", "::1", "0.0.0.0"] {
            assert!(is_valid_ip(good).is_empty(), "{good}");
        }
        for bad in ["", "10.9.8", "10.9.8.256", "host", "010.1.1.1", " 1.2.3.4"] {
            assert_eq!(
                is_valid_ip(bad),
                vec!["must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"],
                "{bad:?}"
            );
        }
    }

    #[test]
    fn special_ips() {
        assert!(is_non_special_ip("10.244.1.5").is_empty());
        assert!(is_non_special_ip("2001:db8::1").is_empty());
        assert_eq!(
            is_non_special_ip("0.0.0.0"),
            vec!["may not be unspecified (0.0.0.0)"]
        );
        assert_eq!(
            is_non_special_ip("127.0.0.1"),
            vec!["may not be in the loopback range (127.0.0.0/8, ::1/128)"]
        );
        assert_eq!(is_non_special_ip("::1").len(), 1);
        assert_eq!(is_non_special_ip("::ffff:127.0.0.1").len(), 1);
        assert_eq!(is_non_special_ip("169.254.169.254").len(), 1);
        assert_eq!(is_non_special_ip("fe80::1").len(), 1);
        assert_eq!(is_non_special_ip("224.0.0.251").len(), 1);
        assert_eq!(is_non_special_ip("ff02::1").len(), 1);
        assert_eq!(is_non_special_ip("x"), vec!["must be a valid IP address"]);
    }

    #[test]
    fn generated_names_are_the_prefix_and_five_safe_characters() {
        assert_eq!(generated_name("web-", [0; 16]), "web-bbbbb");
        let name = generated_name("web-", *b"\x1a\x1b\xff\x80\x33abcdefghijk");
        assert_eq!(name.len(), 9);
        assert!(name[4..]
            .chars()
            .all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)));
        assert!(is_dns1123_subdomain(&name).is_empty());
    }

    #[test]
    fn generate_name_prefixes_may_end_in_dash() {
        assert!(name_is_dns_subdomain("frontend-", true).is_empty());
        assert_eq!(name_is_dns_subdomain("frontend-", false).len(), 1);
        assert_eq!(name_is_dns_subdomain("-", true).len(), 1);
        assert!(name_is_dns1035_label("web-", true).is_empty());
        assert!(name_is_dns_label("ns-", true).is_empty());
    }

    #[test]
    fn any_case_subdomain_accepts_2014_names_only() {
        assert!(name_is_dns_subdomain_any_case("frontendController", false).is_empty());
        assert!(name_is_dns_subdomain_any_case("frontendController-", true).is_empty());
        assert_eq!(name_is_dns_subdomain_any_case("front_end", false).len(), 1);
        assert_eq!(name_is_dns_subdomain_any_case("a/b", false).len(), 1);
        assert_eq!(name_is_dns_subdomain_any_case("", false).len(), 1);
    }

    #[test]
    fn http_header_names() {
        assert!(is_http_header_name("X-Header-Name").is_empty());
        assert_eq!(is_http_header_name("X Header").len(), 1);
    }
}
