//! Name conversions from C/XDR spellings to Rust ones.

/// Rust keywords that cannot be used as identifiers without `r#`.
const KEYWORDS: &[&str] = &[
    "as", "break", "const", "continue", "crate", "else", "enum", "extern", "false", "fn", "for",
    "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub", "ref", "return",
    "self", "Self", "static", "struct", "super", "trait", "true", "type", "unsafe", "use", "where",
    "while", "async", "await", "dyn", "abstract", "become", "box", "do", "final", "macro",
    "override", "priv", "typeof", "unsized", "virtual", "yield", "try", "gen",
];

/// `remote_domain_get_info_ret` -> `RemoteDomainGetInfoRet`; `virNetMessageHeader` ->
/// `VirNetMessageHeader`. Each `_`-separated part gets an upper-case first letter.
pub fn camel(name: &str) -> String {
    let mut out = String::new();
    for part in name.split('_').filter(|p| !p.is_empty()) {
        let mut cs = part.chars();
        if let Some(c) = cs.next() {
            out.extend(c.to_uppercase());
            out.push_str(cs.as_str());
        }
    }
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, 'N');
    }
    out
}

/// `REMOTE_AUTH_NONE` (after prefix stripping: `NONE`) -> `None`.
pub fn camel_upper(name: &str) -> String {
    let mut out = String::new();
    for part in name.split('_').filter(|p| !p.is_empty()) {
        let mut cs = part.chars();
        if let Some(c) = cs.next() {
            out.extend(c.to_uppercase());
            out.push_str(&cs.as_str().to_lowercase());
        }
    }
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, 'N');
    }
    if out == "Self" {
        out.push('_');
    }
    out
}

/// `maxMem` -> `max_mem`, `callbackID` -> `callback_id`, `oldMAC` -> `old_mac`; keywords get
/// `r#` (or a trailing `_` for `self`, `super`, `crate`, `Self`).
pub fn snake(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if c.is_ascii_uppercase() {
            let prev = if i > 0 { Some(chars[i - 1]) } else { None };
            let next = chars.get(i + 1).copied();
            let boundary = match prev {
                Some(p) if p.is_ascii_lowercase() || p.is_ascii_digit() => true,
                Some(p) if p.is_ascii_uppercase() => next.is_some_and(|n| n.is_ascii_lowercase()),
                _ => false,
            };
            if boundary && !out.ends_with('_') {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    ident(&out)
}

/// Make a lower-case name a valid identifier.
pub fn ident(name: &str) -> String {
    match name {
        "self" | "super" | "crate" | "Self" => format!("{name}_"),
        n if KEYWORDS.contains(&n) => format!("r#{n}"),
        n if n.starts_with(|c: char| c.is_ascii_digit()) => format!("n{n}"),
        n => n.to_string(),
    }
}

/// The longest common `_`-word prefix of `names` (with its trailing `_`), leaving at least one
/// word in each name, and never leaving a name that starts with a digit.
pub fn common_prefix(names: &[&str]) -> String {
    if names.len() < 2 {
        // One name has no siblings to share a prefix with: keep it whole.
        return String::new();
    }
    let split: Vec<Vec<&str>> = names.iter().map(|n| n.split('_').collect()).collect();
    let min_len = split.iter().map(|w| w.len()).min().unwrap_or(0);
    let mut n = 0;
    while n + 1 < min_len && split.iter().all(|w| w[n] == split[0][n]) {
        n += 1;
    }
    // Keep the remainder from starting with a digit (and from being empty).
    while n > 0
        && split
            .iter()
            .any(|w| w[n].is_empty() || w[n].starts_with(|c: char| c.is_ascii_digit()))
    {
        n -= 1;
    }
    if n == 0 {
        return String::new();
    }
    let mut p = split[0][..n].join("_");
    p.push('_');
    p
}

/// Make one line of libvirt prose safe and readable as Markdown in a doc comment: no HTML tags,
/// no intra-doc links, no emphasis or headings by accident; C names (`VIR_...`, `virXxx()`) as
/// code and URLs as autolinks. The one escaper of every generator (`.x` comments, API enum
/// docs, client method docs).
pub fn doc_escape(text: &str) -> String {
    let mut out = String::new();
    for (i, word) in text.split(' ').enumerate() {
        if i > 0 {
            out.push(' ');
        }
        let start = word.find("http://").or_else(|| word.find("https://"));
        // C names (`VIR_DOMAIN_AFFECT_LIVE`, `VIR_MIGRATE_PARAM_*`, `virDomainGetInfo()`) as
        // code.
        let core_start = word.find(|c: char| c != '(' && c != '"').unwrap_or(0);
        let core = &word[core_start..];
        let core = core.trim_end_matches(['.', ',', ';', ':', ')', '"', '\'']);
        // `virDomainGetInfo())` trims to `virDomainGetInfo(`: give the call back its `)`.
        let core = if core.ends_with('(') && word[core_start + core.len()..].starts_with(')') {
            &word[core_start..core_start + core.len() + 1]
        } else {
            core
        };
        let ident = core.trim_end_matches("()").trim_end_matches('*');
        let c_name = (ident.starts_with("VIR_")
            || ident
                .strip_prefix("vir")
                .is_some_and(|r| r.starts_with(|c: char| c.is_ascii_uppercase())))
            && ident.len() > 4
            && ident
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if start.is_none() && c_name {
            escape_into(&mut out, &word[..core_start], i == 0);
            out.push_str(&format!("`{core}`"));
            escape_into(&mut out, &word[core_start + core.len()..], false);
        } else if let Some(start) = start {
            let url = &word[start..];
            let end = url
                .trim_end_matches(['.', ',', ';', ':', ')', '\'', '"'])
                .len();
            escape_into(&mut out, &word[..start], i == 0 && start == 0);
            out.push_str(&format!("<{}>", &url[..end]));
            escape_into(&mut out, &url[end..], false);
        } else {
            escape_into(&mut out, word, i == 0);
        }
    }
    out
}

fn escape_into(out: &mut String, s: &str, line_start: bool) {
    for (i, c) in s.chars().enumerate() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '[' | ']' | '*' | '`' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '#' if line_start && i == 0 => out.push_str("\\#"),
            c => out.push(c),
        }
    }
}

/// Doc comment lines (`/// ...`) for free text: one paragraph per line, escaped; lines that look
/// like list or preformatted text are kept in a `text` block.
pub fn doc_lines(text_lines: &[String], indent: &str) -> String {
    let mut out = String::new();
    let lines: Vec<&String> = text_lines.iter().collect();
    if lines.is_empty() {
        return out;
    }
    if lines.len() == 1 {
        out.push_str(&format!("{indent}/// {}\n", doc_escape(lines[0].trim())));
        return out;
    }
    out.push_str(&format!("{indent}/// ```text\n"));
    for l in lines {
        let l = l.replace("```", "'''");
        if l.trim().is_empty() {
            out.push_str(&format!("{indent}///\n"));
        } else {
            out.push_str(&format!("{indent}/// {}\n", l.trim_end()));
        }
    }
    out.push_str(&format!("{indent}/// ```\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions() {
        assert_eq!(
            camel("remote_domain_get_info_ret"),
            "RemoteDomainGetInfoRet"
        );
        assert_eq!(camel("virNetMessageHeader"), "VirNetMessageHeader");
        assert_eq!(camel_upper("CONNECT_OPEN"), "ConnectOpen");
        assert_eq!(snake("maxMem"), "max_mem");
        assert_eq!(snake("callbackID"), "callback_id");
        assert_eq!(snake("oldMAC"), "old_mac");
        assert_eq!(snake("nrVirtCpu"), "nr_virt_cpu");
        assert_eq!(snake("type"), "r#type");
        assert_eq!(snake("need_results"), "need_results");
        assert_eq!(snake("MACAddr"), "mac_addr");
        assert_eq!(
            common_prefix(&["REMOTE_AUTH_NONE", "REMOTE_AUTH_SASL"]),
            "REMOTE_AUTH_"
        );
        assert_eq!(common_prefix(&["VIR_X_2D", "VIR_X_3D"]), "VIR_");
        assert_eq!(common_prefix(&["VIR_ONLY_ONE"]), "");
        assert_eq!(doc_escape("a <b> [c]"), "a &lt;b&gt; \\[c\\]");
    }
}
