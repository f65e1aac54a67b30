//! Package URLs (github.com/package-url/purl-spec) and the other identifiers
//! the two SBOM formats share.

use std::fmt::Write as _;

use super::crates::Crate;
use super::debian::Deb;

/// Percent-encodes what a purl segment cannot hold literally. `+` would read
/// as a space; `:` stays, as the spec's Debian examples keep epochs in the
/// version.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b".-_~:".contains(&byte) {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

/// `pkg:deb/debian/libc6@2.41-12%2Bdeb13u4?arch=amd64&distro=debian-13&upstream=glibc`;
/// qualifiers sorted by key, as the spec wants.
pub fn deb(deb: &Deb, distro: Option<&str>) -> String {
    let mut qualifiers = vec![format!("arch={}", encode(&deb.architecture))];
    if let Some(distro) = distro {
        qualifiers.push(format!("distro={}", encode(distro)));
    }
    if let Some(source) = &deb.source {
        qualifiers.push(format!("upstream={}", encode(source)));
    }
    format!(
        "pkg:deb/debian/{}@{}?{}",
        encode(&deb.name),
        encode(&deb.version),
        qualifiers.join("&")
    )
}

/// `pkg:cargo/tokio@1.54.1`.
pub fn cargo(krate: &Crate) -> String {
    format!(
        "pkg:cargo/{}@{}",
        encode(&krate.name),
        encode(&krate.version)
    )
}

/// `pkg:oci/server@sha256%3A…?tag=0.1.0`: the image by its id.
pub fn oci(name: &str, id: &str, tag: Option<&str>) -> String {
    let mut purl = format!(
        "pkg:oci/{}@{}",
        encode(name),
        encode(id).replace(':', "%3A")
    );
    if let Some(tag) = tag {
        let _ = write!(purl, "?tag={}", encode(tag));
    }
    purl
}

/// A version 5 (name-based, SHA-1) UUID in the URL namespace: the same name
/// gives the same serial number, so the same image gives the same file.
pub fn uuid_v5(name: &str) -> String {
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, name.as_bytes()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debian_versions_keep_their_epoch_and_encode_the_plus() {
        let zlib = Deb {
            name: "zlib1g".into(),
            version: "1:1.3.dfsg+really1.3.1-1+deb13u1".into(),
            architecture: "amd64".into(),
            source: Some("zlib".into()),
            source_version: None,
        };
        assert_eq!(
            deb(&zlib, Some("debian-13")),
            "pkg:deb/debian/zlib1g@1:1.3.dfsg%2Breally1.3.1-1%2Bdeb13u1?arch=amd64&distro=debian-13&upstream=zlib"
        );
        let libstdcxx = Deb {
            name: "libstdc++6".into(),
            version: "14.2.0-19".into(),
            architecture: "amd64".into(),
            source: None,
            source_version: None,
        };
        assert_eq!(
            deb(&libstdcxx, None),
            "pkg:deb/debian/libstdc%2B%2B6@14.2.0-19?arch=amd64"
        );
    }

    #[test]
    fn the_uuid_is_rfc_4122_version_5() {
        // Python: uuid.uuid5(uuid.NAMESPACE_URL, "https://example.com")
        assert_eq!(
            uuid_v5("https://example.com"),
            "4fd35a71-71ef-5a55-a9d9-aa75c889a6d0"
        );
    }

    #[test]
    fn the_image_purl_names_its_digest() {
        assert_eq!(
            oci("server", "sha256:ab12", Some("0.1.0")),
            "pkg:oci/server@sha256%3Aab12?tag=0.1.0"
        );
    }
}
