//! Distinguished names for `tls_client_auth` (RFC 8705 §2.1.2): parsed from RFC 4514
//! text once, compared with a certificate's subject structurally (RFC 5280 §7.1).
//!
//! A registered DN is parsed into its RDNSequence: RFC 4514 writes the RDNs in reverse
//! order (§2.1), so `CN=app,O=Contoso,C=DE` is the sequence `C, O, CN`. Values may use
//! every RFC 4514 form: `\,` `\+` `\=` `\"` `\\` `\ ` and the other escapes, `\XX` hex
//! pairs (UTF-8 bytes), and `#hex` (the BER encoding of the value). Attribute types are
//! the usual short names or dotted OIDs (`2.5.4.3=app`). Unescaped spaces around `,`, `+`
//! and `=` are accepted (RFC 4514 §3 allows being liberal; such spaces are insignificant
//! under RFC 4518 anyway), so `CN=app, O=Contoso` parses as two RDNs.
//!
//! Comparison (RFC 5280 §7.1, RFC 4517 `distinguishedNameMatch`): the same number of
//! RDNs in the same order; each RDN equal as a set of attribute type-and-values; string
//! values (PrintableString, UTF8String, IA5String, BMPString, TeletexString,
//! UniversalString, VisibleString, NumericString) equal after the RFC 4518 preparation of
//! `caseIgnoreMatch` (mapping, NFKC, case folding, insignificant-space handling); other
//! values equal as their DER bytes.
//!
//! Why by hand: the RFC 4514 crates found (`rfc2253` 0.1, unmaintained since 2018, folds the
//! DN into a map and loses order and multi-valued RDNs; `ldapdn`, which returns the raw
//! escaped text without OIDs, `#hex` decoding or matching) would still leave the escape
//! decoding, the OID table and all of the RFC 4518 matching to write here; the grammar is
//! small enough to parse directly over bytes.

use std::fmt;

use x509_parser::asn1_rs::{Any, Class};
use x509_parser::x509::X509Name;

/// At most this many RDNs, attributes per RDN, and bytes of DN text.
const MAX_RDNS: usize = 64;
const MAX_ATVS: usize = 16;
const MAX_TEXT: usize = 8 * 1024;

/// Short names of attribute types (RFC 4514 §3, RFC 4519, RFC 5280 appendix A), in the
/// form they are written back.
const NAMES: &[(&str, &str)] = &[
    ("CN", "2.5.4.3"),
    ("SN", "2.5.4.4"),
    ("SERIALNUMBER", "2.5.4.5"),
    ("C", "2.5.4.6"),
    ("L", "2.5.4.7"),
    ("ST", "2.5.4.8"),
    ("STREET", "2.5.4.9"),
    ("O", "2.5.4.10"),
    ("OU", "2.5.4.11"),
    ("TITLE", "2.5.4.12"),
    ("BUSINESSCATEGORY", "2.5.4.15"),
    ("POSTALCODE", "2.5.4.17"),
    ("NAME", "2.5.4.41"),
    ("GN", "2.5.4.42"),
    ("INITIALS", "2.5.4.43"),
    ("GENERATIONQUALIFIER", "2.5.4.44"),
    ("DNQUALIFIER", "2.5.4.46"),
    ("PSEUDONYM", "2.5.4.65"),
    ("ORGANIZATIONIDENTIFIER", "2.5.4.97"),
    ("DC", "0.9.2342.19200300.100.1.25"),
    ("UID", "0.9.2342.19200300.100.1.1"),
    ("EMAILADDRESS", "1.2.840.113549.1.9.1"),
];

/// Aliases accepted on input only.
const ALIASES: &[(&str, &str)] = &[
    ("COMMONNAME", "2.5.4.3"),
    ("SURNAME", "2.5.4.4"),
    ("COUNTRYNAME", "2.5.4.6"),
    ("LOCALITYNAME", "2.5.4.7"),
    ("STATEORPROVINCENAME", "2.5.4.8"),
    ("S", "2.5.4.8"),
    ("ORGANIZATIONNAME", "2.5.4.10"),
    ("ORGANIZATIONALUNITNAME", "2.5.4.11"),
    ("GIVENNAME", "2.5.4.42"),
    ("DOMAINCOMPONENT", "0.9.2342.19200300.100.1.25"),
    ("USERID", "0.9.2342.19200300.100.1.1"),
    ("E", "1.2.840.113549.1.9.1"),
];

/// A DN that cannot be parsed: what is wrong and where (a character offset).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the subject DN is not valid RFC 4514 text: {problem} (at character {at})")]
#[non_exhaustive]
pub struct DnError {
    /// What is wrong.
    pub problem: String,
    /// Offset in characters from the start of the text.
    pub at: usize,
}

/// An attribute value.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Value {
    /// A character string (decoded).
    Text(String),
    /// Any other value: its complete DER/BER encoding (tag, length, content).
    Der(Vec<u8>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Atv {
    /// The attribute type as a dotted OID.
    oid: String,
    value: Value,
    /// RFC 4518 prepared form of a text value (`None`: not a string, or prohibited
    /// characters, which match nothing).
    prepared: Option<String>,
}

impl Atv {
    fn new(oid: String, value: Value) -> Self {
        let prepared = match &value {
            Value::Text(t) => prepare(t),
            Value::Der(_) => None,
        };
        Self {
            oid,
            value,
            prepared,
        }
    }

    fn matches(&self, other: &Atv) -> bool {
        if self.oid != other.oid {
            return false;
        }
        match (&self.value, &other.value) {
            (Value::Text(_), Value::Text(_)) => match (&self.prepared, &other.prepared) {
                (Some(a), Some(b)) => a == b,
                _ => false,
            },
            (Value::Der(a), Value::Der(b)) => a == b,
            _ => false,
        }
    }
}

/// A parsed distinguished name, RDNs in RDNSequence (DER) order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DistinguishedName {
    rdns: Vec<Vec<Atv>>,
}

impl DistinguishedName {
    /// Parses RFC 4514 text.
    pub fn parse(text: &str) -> Result<Self, DnError> {
        Parser::new(text).parse()
    }

    /// The subject (or any name) of a certificate, from its DER structure.
    pub fn from_x509(name: &X509Name<'_>) -> Self {
        let rdns = name
            .iter()
            .map(|rdn| {
                rdn.iter()
                    .map(|atv| {
                        Atv::new(
                            atv.attr_type().to_id_string(),
                            value_from_any(atv.attr_value()),
                        )
                    })
                    .collect()
            })
            .collect();
        Self { rdns }
    }

    /// Reverses the RDN order (for names written first-to-last).
    pub(crate) fn reverse(&mut self) {
        self.rdns.reverse();
    }

    /// Whether the DN has no RDN.
    pub fn is_empty(&self) -> bool {
        self.rdns.is_empty()
    }

    /// RFC 5280 §7.1 equality: RDN by RDN in order, each RDN as a set.
    pub fn matches(&self, other: &DistinguishedName) -> bool {
        self.rdns.len() == other.rdns.len()
            && self
                .rdns
                .iter()
                .zip(&other.rdns)
                .all(|(a, b)| rdn_matches(a, b))
    }
}

/// Set equality of two RDNs (small: at most [`MAX_ATVS`] each; backtracking so that
/// repeated attributes pair up one to one).
fn rdn_matches(a: &[Atv], b: &[Atv]) -> bool {
    fn go(a: &[Atv], b: &[Atv], used: &mut [bool]) -> bool {
        let Some((first, rest)) = a.split_first() else {
            return true;
        };
        for (j, cand) in b.iter().enumerate() {
            if !used[j] && first.matches(cand) {
                used[j] = true;
                if go(rest, b, used) {
                    return true;
                }
                used[j] = false;
            }
        }
        false
    }
    a.len() == b.len() && go(a, b, &mut vec![false; b.len()])
}

/// RFC 4514 text: RDNs in reverse order, `+` between the attributes of one RDN.
impl fmt::Display for DistinguishedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, rdn) in self.rdns.iter().rev().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            for (j, atv) in rdn.iter().enumerate() {
                if j > 0 {
                    f.write_str("+")?;
                }
                let name = NAMES
                    .iter()
                    .find(|(_, oid)| *oid == atv.oid)
                    .map_or(atv.oid.as_str(), |(n, _)| *n);
                write!(f, "{name}=")?;
                match &atv.value {
                    Value::Text(t) => write_escaped(f, t)?,
                    Value::Der(d) => {
                        f.write_str("#")?;
                        for b in d {
                            write!(f, "{b:02X}")?;
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

fn write_escaped(f: &mut fmt::Formatter<'_>, t: &str) -> fmt::Result {
    let n = t.chars().count();
    for (i, c) in t.chars().enumerate() {
        match c {
            '\\' | '"' | '+' | ',' | ';' | '<' | '>' => write!(f, "\\{c}")?,
            '#' if i == 0 => f.write_str("\\#")?,
            ' ' if i == 0 || i + 1 == n => f.write_str("\\ ")?,
            c if c.is_control() => {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    write!(f, "\\{b:02X}")?;
                }
            }
            c => write!(f, "{c}")?,
        }
    }
    Ok(())
}

/// The value of a certificate attribute: decoded when it is a string type, else its DER.
fn value_from_any(any: &Any<'_>) -> Value {
    if any.class() == Class::Universal
        && !any.header.is_constructed()
        && let Some(t) = decode_string(any.tag().0, any.data)
    {
        return Value::Text(t);
    }
    Value::Der(encode_tlv(
        any.class() as u8,
        any.header.is_constructed(),
        any.tag().0,
        any.data,
    ))
}

/// Decodes the content of a universal string type; `None` for other tags or bad content.
fn decode_string(tag: u32, data: &[u8]) -> Option<String> {
    match tag {
        // UTF8String
        12 => String::from_utf8(data.to_vec()).ok(),
        // NumericString, PrintableString, IA5String, VisibleString: ASCII
        18 | 19 | 22 | 26 => data
            .is_ascii()
            .then(|| data.iter().map(|&b| char::from(b)).collect()),
        // TeletexString (T.61): read as ISO 8859-1, as most implementations do
        20 => Some(data.iter().map(|&b| char::from(b)).collect()),
        // UniversalString: UCS-4 big-endian
        28 => {
            if !data.len().is_multiple_of(4) {
                return None;
            }
            data.chunks_exact(4)
                .map(|c| char::from_u32(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
                .collect()
        }
        // BMPString: UTF-16 big-endian (UCS-2; surrogate pairs accepted)
        30 => {
            if !data.len().is_multiple_of(2) {
                return None;
            }
            let units: Vec<u16> = data
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16(&units).ok()
        }
        _ => None,
    }
}

/// DER identifier and length octets followed by `data`.
fn encode_tlv(class: u8, constructed: bool, tag: u32, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 8);
    let first = (class << 6) | if constructed { 0x20 } else { 0 };
    if tag < 31 {
        out.push(first | tag as u8);
    } else {
        out.push(first | 0x1f);
        let mut groups = Vec::new();
        let mut t = tag;
        loop {
            groups.push((t & 0x7f) as u8);
            t >>= 7;
            if t == 0 {
                break;
            }
        }
        for (i, g) in groups.iter().enumerate().rev() {
            out.push(if i > 0 { g | 0x80 } else { *g });
        }
    }
    let len = data.len();
    if len < 128 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        let sig = bytes.get(skip..).unwrap_or(&[]);
        out.push(0x80 | sig.len() as u8);
        out.extend_from_slice(sig);
    }
    out.extend_from_slice(data);
    out
}

/// Parses one BER TLV from `#hex` bytes: `(tag byte, content)` when the encoding is a
/// single well-formed element (definite length, nothing after it).
fn split_tlv(der: &[u8]) -> Option<(u8, &[u8])> {
    let (&id, rest) = der.split_first()?;
    let mut rest = rest;
    if id & 0x1f == 0x1f {
        // High tag number: skip the continuation octets.
        loop {
            let (&b, r) = rest.split_first()?;
            rest = r;
            if b & 0x80 == 0 {
                break;
            }
        }
    }
    let (&l, r) = rest.split_first()?;
    rest = r;
    let len = if l < 0x80 {
        usize::from(l)
    } else {
        let n = usize::from(l & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let (lb, r) = rest.split_at(n);
        rest = r;
        lb.iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b))
    };
    (rest.len() == len).then_some((id, rest))
}

/// The value of `#hex`: a string type is decoded (so `CN=#0C0161` equals `CN=a`), any
/// other type stays DER.
fn value_from_der(der: Vec<u8>) -> Option<Value> {
    let (id, content) = split_tlv(&der)?;
    // Universal, primitive, low tag number.
    if id & 0xe0 == 0
        && let Some(t) = decode_string(u32::from(id & 0x1f), content)
    {
        return Some(Value::Text(t));
    }
    Some(Value::Der(der))
}

mod parse;
mod prepare;

use parse::*;
use prepare::*;

#[cfg(test)]
mod tests {
    use super::*;
    use x509_parser::prelude::FromDer as _;

    fn dn(s: &str) -> DistinguishedName {
        DistinguishedName::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    /// DER of a Name: `rdns` in RDNSequence order, each a list of (OID DER content,
    /// value TLV).
    fn der_name(rdns: &[&[(&[u8], Vec<u8>)]]) -> Vec<u8> {
        let mut seq = Vec::new();
        for rdn in rdns {
            let mut set = Vec::new();
            for (oid, value) in rdn.iter() {
                let mut atv = encode_tlv(0, false, 6, oid);
                atv.extend_from_slice(value);
                set.extend(encode_tlv(0, true, 16, &atv));
            }
            seq.extend(encode_tlv(0, true, 17, &set));
        }
        encode_tlv(0, true, 16, &seq)
    }

    const CN: &[u8] = &[0x55, 0x04, 0x03];
    const O: &[u8] = &[0x55, 0x04, 0x0a];
    const C: &[u8] = &[0x55, 0x04, 0x06];
    const OU: &[u8] = &[0x55, 0x04, 0x0b];

    fn utf8(s: &str) -> Vec<u8> {
        encode_tlv(0, false, 12, s.as_bytes())
    }
    fn printable(s: &str) -> Vec<u8> {
        encode_tlv(0, false, 19, s.as_bytes())
    }

    fn cert_dn(der: &[u8]) -> DistinguishedName {
        let (rest, name) = X509Name::from_der(der).unwrap();
        assert!(rest.is_empty());
        DistinguishedName::from_x509(&name)
    }

    #[test]
    fn escaped_comma_is_one_rdn_not_two() {
        let one = cert_dn(&der_name(&[&[(CN, utf8("a,b"))]]));
        let two = cert_dn(&der_name(&[&[(CN, utf8("b"))], &[(CN, utf8("a"))]]));
        assert!(dn("CN=a\\,b").matches(&one));
        assert!(!dn("CN=a\\,b").matches(&two));
        assert!(dn("CN=a,CN=b").matches(&two));
        assert!(!dn("CN=a,CN=b").matches(&one));
        // The reported spoof: a single CN holding the whole text.
        let spoof = cert_dn(&der_name(&[&[(CN, utf8("victim-app, O=Contoso, C=DE"))]]));
        let real = cert_dn(&der_name(&[
            &[(C, printable("DE"))],
            &[(O, utf8("Contoso"))],
            &[(CN, utf8("victim-app"))],
        ]));
        let registered = dn("CN=victim-app, O=Contoso, C=DE");
        assert!(registered.matches(&real));
        assert!(!registered.matches(&spoof));
        assert_eq!(spoof.to_string(), "CN=victim-app\\, O=Contoso\\, C=DE");
        assert_eq!(real.to_string(), "CN=victim-app,O=Contoso,C=DE");
    }

    #[test]
    fn multi_valued_rdns_are_sets() {
        let cert = cert_dn(&der_name(&[&[(CN, utf8("a")), (O, utf8("b"))]]));
        assert!(dn("CN=a+O=b").matches(&cert));
        assert!(dn("O=b+CN=a").matches(&cert));
        assert_eq!(dn("CN=a+O=b"), dn("CN=a+O=b"));
        assert!(dn("CN=a+O=b").matches(&dn("O=b+CN=a")));
        // Not the same as two RDNs, nor a subset.
        assert!(!dn("CN=a,O=b").matches(&cert));
        assert!(!dn("CN=a").matches(&cert));
        assert!(!dn("CN=a+O=b+OU=c").matches(&cert));
        // Escaped `+` is part of the value.
        let plus = cert_dn(&der_name(&[&[(CN, utf8("a+O=b"))]]));
        assert!(dn("CN=a\\+O\\=b").matches(&plus));
        assert!(dn("CN=a\\+O=b").matches(&plus), "`=` needs no escape");
        assert!(!dn("CN=a+O=b").matches(&plus));
        // Repeated attributes pair one to one.
        let dup = cert_dn(&der_name(&[&[(OU, utf8("x")), (OU, utf8("y"))]]));
        assert!(dn("OU=y+OU=x").matches(&dup));
        assert!(!dn("OU=x+OU=x").matches(&dup));
    }

    #[test]
    fn order_matters_and_text_is_reversed() {
        let cert = cert_dn(&der_name(&[&[(C, printable("DE"))], &[(CN, utf8("app"))]]));
        assert!(dn("CN=app,C=DE").matches(&cert));
        assert!(!dn("C=DE,CN=app").matches(&cert), "reversed order differs");
    }

    #[test]
    fn case_and_insignificant_spaces() {
        let cert = cert_dn(&der_name(&[&[(CN, printable("victim"))]]));
        assert!(dn("cn=VICTIM").matches(&cert));
        assert!(dn("CN=victim").matches(&cert));
        assert!(dn("Cn =  Victim ").matches(&cert));
        let spaced = cert_dn(&der_name(&[&[(CN, utf8("  my   app "))]]));
        assert!(dn("CN=my app").matches(&spaced));
        assert!(dn("CN=\\ my app\\ ").matches(&spaced));
        assert!(!dn("CN=myapp").matches(&spaced));
        // NFKC and case folding beyond ASCII.
        let wide = cert_dn(&der_name(&[&[(CN, utf8("ＡＰＰ Straße"))]]));
        assert!(dn("CN=app straße").matches(&wide));
        assert!(dn("CN=App Straße").matches(&wide));
        assert!(!dn("CN=apq straße").matches(&wide));
    }

    #[test]
    fn string_types_are_decoded() {
        let bmp: Vec<u8> = "Zoë".encode_utf16().flat_map(u16::to_be_bytes).collect();
        let ucs4: Vec<u8> = "Zoë"
            .chars()
            .flat_map(|c| u32::from(c).to_be_bytes())
            .collect();
        for value in [
            utf8("Zoë"),
            encode_tlv(0, false, 30, &bmp),
            encode_tlv(0, false, 28, &ucs4),
            encode_tlv(0, false, 20, &[b'Z', b'o', 0xeb]),
        ] {
            let cert = cert_dn(&der_name(&[&[(CN, value.clone())]]));
            assert!(dn("CN=zoë").matches(&cert), "{value:02x?}");
            assert!(dn("CN=Zo\\C3\\AB").matches(&cert), "{value:02x?}");
        }
        for tag in [19u8, 22, 26] {
            let cert = cert_dn(&der_name(&[&[(
                CN,
                encode_tlv(0, false, u32::from(tag), b"Ab"),
            )]]));
            assert!(dn("CN=ab").matches(&cert), "tag {tag}");
        }
        // A PrintableString with non-ASCII content is not text: it matches nothing textual.
        let bad = cert_dn(&der_name(&[&[(CN, encode_tlv(0, false, 19, &[0xff]))]]));
        assert!(!dn("CN=\\C3\\BF").matches(&bad));
        assert_eq!(bad.to_string(), "CN=#1301FF");
        assert!(
            dn("CN=#1301ff").matches(&bad),
            "non-strings compare as DER bytes"
        );
    }

    #[test]
    fn hex_values_and_oids() {
        let cert = cert_dn(&der_name(&[&[(CN, utf8("a"))]]));
        assert!(dn("CN=#0C0161").matches(&cert), "a #hex UTF8String is text");
        assert!(
            dn("CN=#130141").matches(&cert),
            "and compares case-insensitively"
        );
        assert!(dn("2.5.4.3=a").matches(&cert));
        assert!(dn("2.5.4.3=#0c0161").matches(&cert));
        assert!(!dn("2.5.4.4=a").matches(&cert));
        let octets = cert_dn(&der_name(&[&[(CN, encode_tlv(0, false, 4, &[1, 2]))]]));
        assert!(dn("CN=#04020102").matches(&octets));
        assert!(!dn("CN=#04020103").matches(&octets));
        assert!(!dn("CN=\\01\\02").matches(&octets));
        // Unknown OIDs round-trip in dotted form.
        let odd = dn("1.2.3.4=x,CN=y");
        assert_eq!(odd.to_string(), "1.2.3.4=x,CN=y");
    }

    #[test]
    fn escapes_parse_and_print_back() {
        let d = dn("CN=\\\"q\\\" \\\\ \\2C\\3b \\<\\>\\=\\#x,O=\\#lead");
        assert_eq!(
            d.to_string(),
            "CN=\\\"q\\\" \\\\ \\,\\; \\<\\>=#x,O=\\#lead"
        );
        assert_eq!(dn(&d.to_string()), d);
        let spaces = dn("CN=\\ a\\ ");
        assert_eq!(spaces.to_string(), "CN=\\ a\\ ");
        assert_eq!(spaces.rdns[0][0].value, Value::Text(" a ".into()));
        assert_eq!(dn("CN=a\\00b").to_string(), "CN=a\\00b");
        assert!(dn("").is_empty());
    }

    #[test]
    fn bad_syntax_is_refused_with_the_problem() {
        for (text, needle) in [
            ("CN", "expected `=`"),
            ("CN=a,", "missing after the last"),
            ("=a", "expected an attribute type"),
            ("XX=a", "unknown attribute type `XX`"),
            ("CN=a;O=b", "`;` must be escaped"),
            ("CN=a\"b", "`\"` must be escaped"),
            ("CN=a\\q", "`\\` must be followed"),
            ("CN=a\\4", "`\\` must be followed"),
            ("CN=#0c01", "one complete BER element"),
            ("CN=#0c016", "even number"),
            ("CN=#", "at least one byte"),
            ("CN=#0c0161x", "only hex digits"),
            ("01.2=a", "leading zeros"),
            ("2=a", "at least two arcs"),
            ("CN=\\ff", "not UTF-8"),
            ("CN=a,,O=b", "expected an attribute type"),
        ] {
            let e = DistinguishedName::parse(text).expect_err(text);
            assert!(e.to_string().contains(needle), "{text}: {e}");
            assert!(e.to_string().contains("subject DN"), "{e}");
        }
    }
}
