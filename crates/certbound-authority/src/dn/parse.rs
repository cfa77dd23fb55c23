//! The RFC 4514 string parser.

use super::*;

pub(super) struct Parser<'a> {
    pub(super) b: &'a [u8],
    pub(super) text: &'a str,
    pub(super) i: usize,
}

impl<'a> Parser<'a> {
    pub(super) fn new(text: &'a str) -> Self {
        Self {
            b: text.as_bytes(),
            text,
            i: 0,
        }
    }

    fn err(&self, problem: impl Into<String>) -> DnError {
        DnError {
            problem: problem.into(),
            at: self
                .text
                .get(..self.i)
                .map_or(self.i, |s| s.chars().count()),
        }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn skip_spaces(&mut self) {
        while self.peek() == Some(b' ') {
            self.i += 1;
        }
    }

    pub(super) fn parse(mut self) -> Result<DistinguishedName, DnError> {
        if self.b.len() > MAX_TEXT {
            return Err(self.err(format!("it is longer than {MAX_TEXT} bytes")));
        }
        let mut rdns: Vec<Vec<Atv>> = Vec::new();
        self.skip_spaces();
        if self.peek().is_none() {
            return Ok(DistinguishedName { rdns });
        }
        loop {
            let mut rdn = Vec::new();
            loop {
                self.skip_spaces();
                let oid = self.attribute_type()?;
                self.skip_spaces();
                if self.peek() != Some(b'=') {
                    return Err(self.err("expected `=` after the attribute type"));
                }
                self.i += 1;
                self.skip_spaces();
                let value = if self.peek() == Some(b'#') {
                    self.hex_value()?
                } else {
                    Value::Text(self.string_value()?)
                };
                rdn.push(Atv::new(oid, value));
                if rdn.len() > MAX_ATVS {
                    return Err(self.err(format!("more than {MAX_ATVS} attributes in one RDN")));
                }
                self.skip_spaces();
                if self.peek() == Some(b'+') {
                    self.i += 1;
                    continue;
                }
                break;
            }
            rdns.push(rdn);
            if rdns.len() > MAX_RDNS {
                return Err(self.err(format!("more than {MAX_RDNS} RDNs")));
            }
            match self.peek() {
                None => break,
                Some(b',') => {
                    self.i += 1;
                    self.skip_spaces();
                    if self.peek().is_none() {
                        return Err(self.err("an RDN is missing after the last `,`"));
                    }
                }
                Some(c) => {
                    return Err(self.err(format!(
                        "unexpected `{}` after a value (separate RDNs with `,`, attributes of one RDN with `+`; escape special characters with `\\`)",
                        char::from(c).escape_default()
                    )));
                }
            }
        }
        // RFC 4514 text lists the RDNs last-first.
        rdns.reverse();
        Ok(DistinguishedName { rdns })
    }

    /// `descr` (a known short name, any case) or `numericoid`.
    fn attribute_type(&mut self) -> Result<String, DnError> {
        let start = self.i;
        match self.peek() {
            Some(c) if c.is_ascii_alphabetic() => {
                while self
                    .peek()
                    .is_some_and(|c| c.is_ascii_alphanumeric() || c == b'-')
                {
                    self.i += 1;
                }
                let name = self.text.get(start..self.i).unwrap_or("");
                match NAMES
                    .iter()
                    .chain(ALIASES)
                    .find(|(n, _)| n.eq_ignore_ascii_case(name))
                {
                    Some((_, oid)) => Ok((*oid).to_owned()),
                    None => {
                        self.i = start;
                        Err(self.err(format!(
                            "unknown attribute type `{name}` (use a short name such as CN, O, OU, C, L, ST, DC, or the dotted OID, e.g. 2.5.4.3=…)"
                        )))
                    }
                }
            }
            Some(c) if c.is_ascii_digit() => {
                loop {
                    let arc = self.i;
                    while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                        self.i += 1;
                    }
                    let digits = self.b.get(arc..self.i).unwrap_or(&[]);
                    if digits.is_empty() || (digits.len() > 1 && digits.first() == Some(&b'0')) {
                        return Err(self.err(
                            "malformed OID (arcs are decimal numbers without leading zeros)",
                        ));
                    }
                    if self.peek() == Some(b'.') {
                        self.i += 1;
                        continue;
                    }
                    break;
                }
                let oid = self.text.get(start..self.i).unwrap_or("");
                if !oid.contains('.') {
                    return Err(self.err("an OID has at least two arcs (e.g. 2.5.4.3)"));
                }
                Ok(oid.to_owned())
            }
            Some(_) => Err(self.err("expected an attribute type (a name such as CN, or an OID)")),
            None => Err(self.err("expected an attribute type, found the end of the text")),
        }
    }

    /// `#` 1*hexpair: the BER encoding of the value.
    fn hex_value(&mut self) -> Result<Value, DnError> {
        self.i += 1;
        let mut der = Vec::new();
        while let Some(h) = self.peek().and_then(hex_digit) {
            let Some(l) = self.b.get(self.i + 1).copied().and_then(hex_digit) else {
                return Err(self.err("a #hex value needs an even number of hex digits"));
            };
            der.push(h << 4 | l);
            self.i += 2;
        }
        if !matches!(self.peek(), None | Some(b',' | b'+' | b' ')) {
            return Err(self.err("a #hex value may hold only hex digits"));
        }
        if der.is_empty() {
            return Err(self.err("a #hex value needs at least one byte"));
        }
        value_from_der(der).ok_or_else(|| {
            self.err("a #hex value must be one complete BER element (tag, length, content)")
        })
    }

    /// An RFC 4514 `string` with its escapes; unescaped trailing spaces are dropped.
    fn string_value(&mut self) -> Result<String, DnError> {
        let mut out: Vec<u8> = Vec::new();
        // Length of `out` up to the last byte that is not an unescaped space.
        let mut keep = 0;
        while let Some(c) = self.peek() {
            match c {
                b',' | b'+' => break,
                b'\\' => {
                    self.i += 1;
                    match self.peek() {
                        Some(
                            e @ (b'\\' | b'"' | b'+' | b',' | b';' | b'<' | b'>' | b' ' | b'#'
                            | b'='),
                        ) => {
                            out.push(e);
                            self.i += 1;
                        }
                        Some(h) if hex_digit(h).is_some() => {
                            let (Some(hi), Some(lo)) = (
                                hex_digit(h),
                                self.b.get(self.i + 1).copied().and_then(hex_digit),
                            ) else {
                                return Err(self.err("`\\` must be followed by two hex digits or by one of \\ \" + , ; < > = # and space"));
                            };
                            out.push(hi << 4 | lo);
                            self.i += 2;
                        }
                        _ => {
                            return Err(self.err("`\\` must be followed by two hex digits or by one of \\ \" + , ; < > = # and space"));
                        }
                    }
                    keep = out.len();
                }
                b'"' | b';' | b'<' | b'>' => {
                    return Err(self.err(format!(
                        "`{}` must be escaped with `\\` in a value",
                        char::from(c)
                    )));
                }
                0 => return Err(self.err("a NUL character must be escaped as \\00")),
                b' ' => {
                    out.push(c);
                    self.i += 1;
                }
                _ => {
                    out.push(c);
                    self.i += 1;
                    keep = out.len();
                }
            }
        }
        out.truncate(keep);
        String::from_utf8(out).map_err(|_| self.err("the \\XX escapes of a value are not UTF-8"))
    }
}

pub(super) fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}
