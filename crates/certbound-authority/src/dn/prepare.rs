//! RFC 4518 string preparation: what makes two attribute values compare equal.

/// RFC 4518 string preparation for `caseIgnoreMatch`: transcoded already; map (§2.2),
/// normalise (NFKC, §2.3) and case-fold; refuse prohibited characters (§2.4: `None`, which
/// matches nothing); insignificant-space handling (§2.6.1: no leading or trailing spaces,
/// inner runs of spaces compressed to one).
pub(crate) fn prepare(s: &str) -> Option<String> {
    let mut mapped = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            // Mapped to nothing.
            '\u{00AD}'
            | '\u{1806}'
            | '\u{034F}'
            | '\u{180B}'..='\u{180D}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FFFC}'
            | '\u{200B}' => {}
            // Mapped to SPACE.
            '\u{0009}'..='\u{000D}' | '\u{0085}' => mapped.push(' '),
            c if is_separator(c) => mapped.push(' '),
            // Other controls (Cc) and format characters (Cf): nothing.
            c if c.is_control() || is_format(c) => {}
            c => mapped.push(c),
        }
    }
    let nfkc = icu_normalizer::ComposingNormalizerBorrowed::new_nfkc();
    let folded: String = nfkc
        .normalize(&mapped)
        .chars()
        .flat_map(char::to_lowercase)
        .collect();
    let normal = nfkc.normalize(&folded);
    if normal.chars().any(is_prohibited) {
        return None;
    }
    let mut out = String::with_capacity(normal.len());
    for word in normal.split(' ').filter(|w| !w.is_empty()) {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    Some(out)
}

/// Unicode Zs, Zl, Zp.
pub(super) fn is_separator(c: char) -> bool {
    matches!(
        c,
        ' ' | '\u{00A0}' | '\u{1680}' | '\u{2000}'
            ..='\u{200A}' | '\u{2028}' | '\u{2029}' | '\u{202F}' | '\u{205F}' | '\u{3000}'
    )
}

/// Unicode Cf (format) characters.
pub(super) fn is_format(c: char) -> bool {
    matches!(c,
        '\u{0600}'..='\u{0605}' | '\u{061C}' | '\u{06DD}' | '\u{070F}' | '\u{08E2}' | '\u{180E}'
        | '\u{200C}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}'
        | '\u{2066}'..='\u{206F}' | '\u{FEFF}' | '\u{FFF9}'..='\u{FFFB}' | '\u{110BD}'
        | '\u{110CD}' | '\u{1BCA0}'..='\u{1BCA3}' | '\u{1D173}'..='\u{1D17A}' | '\u{E0001}'
        | '\u{E0020}'..='\u{E007F}')
}

/// RFC 4518 §2.4: private use, non-characters and the replacement character.
pub(super) fn is_prohibited(c: char) -> bool {
    let u = u32::from(c);
    matches!(c, '\u{E000}'..='\u{F8FF}' | '\u{F0000}'..='\u{FFFFD}' | '\u{100000}'..='\u{10FFFD}' | '\u{FDD0}'..='\u{FDEF}' | '\u{FFFD}')
        || (u & 0xFFFE) == 0xFFFE
}
