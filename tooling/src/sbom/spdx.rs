//! The inventory as an SPDX 2.3 JSON document.

use std::collections::HashSet;

use serde_json::{Value, json};

use super::crates::Crate;
use super::debian::Deb;
use super::{Inventory, purl};

/// SPDX ids allow letters, digits, `.` and `-` only; Debian versions carry
/// `+`, `~` and `:`. Two names that map to one id get a numbered suffix.
struct Ids(HashSet<String>);

impl Ids {
    fn make(&mut self, kind: &str, name: &str, version: &str) -> String {
        let cleaned: String = format!("{kind}-{name}-{version}")
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        let mut id = format!("SPDXRef-{cleaned}");
        let mut n = 2;
        while !self.0.insert(id.clone()) {
            id = format!("SPDXRef-{cleaned}-{n}");
            n += 1;
        }
        id
    }
}

fn relationship(from: &str, kind: &str, to: &str) -> Value {
    json!({"spdxElementId": from, "relationshipType": kind, "relatedSpdxElement": to})
}

fn purl_ref(locator: &str) -> Value {
    json!([{
        "referenceCategory": "PACKAGE-MANAGER",
        "referenceType": "purl",
        "referenceLocator": locator,
    }])
}

fn deb_package(id: &str, deb: &Deb, distro: Option<&str>) -> Value {
    let mut package = json!({
        "SPDXID": id,
        "name": deb.name,
        "versionInfo": deb.version,
        "supplier": "Organization: Debian",
        "primaryPackagePurpose": "LIBRARY",
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": false,
        "licenseConcluded": "NOASSERTION",
        "licenseDeclared": "NOASSERTION",
        "copyrightText": "NOASSERTION",
        "externalRefs": purl_ref(&purl::deb(deb, distro)),
    });
    if let Some(source) = &deb.source {
        let version = deb.source_version.as_deref().unwrap_or(&deb.version);
        package["sourceInfo"] = format!("built package from: {source} {version}").into();
    }
    package
}

fn crate_package(id: &str, krate: &Crate) -> Value {
    let mut package = json!({
        "SPDXID": id,
        "name": krate.name,
        "versionInfo": krate.version,
        "primaryPackagePurpose": "LIBRARY",
        "downloadLocation": format!("https://crates.io/api/v1/crates/{}/{}/download", krate.name, krate.version),
        "filesAnalyzed": false,
        "licenseConcluded": "NOASSERTION",
        "licenseDeclared": krate.license.as_deref().unwrap_or("NOASSERTION"),
        "copyrightText": "NOASSERTION",
        "externalRefs": purl_ref(&purl::cargo(krate)),
    });
    if let Some(sum) = &krate.checksum {
        package["checksums"] = json!([{"algorithm": "SHA256", "checksumValue": sum}]);
    }
    if let Some(written) = &krate.license_as_written {
        package["licenseComments"] = format!("the crate's manifest says {written:?}").into();
    }
    package
}

pub fn document(inventory: &Inventory) -> Value {
    let mut ids = Ids(HashSet::new());
    let image = &inventory.image;
    let image_id = ids.make(
        "image",
        &image.name,
        image.tag.as_deref().unwrap_or("untagged"),
    );
    let binary_id = ids.make("binary", &inventory.binary.name, &inventory.binary.version);
    let mut packages = vec![
        json!({
            "SPDXID": image_id,
            "name": image.name,
            "versionInfo": image.tag.as_deref().unwrap_or(&image.id),
            "primaryPackagePurpose": "CONTAINER",
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": false,
            "checksums": [{"algorithm": "SHA256", "checksumValue": image.id_hex()}],
            "externalRefs": purl_ref(&image.purl()),
            "comment": match &image.digest {
                Some(digest) => format!("image id {}, registry digest {digest}", image.id),
                None => format!("image id {}, not pushed to a registry (no digest)", image.id),
            },
        }),
        json!({
            "SPDXID": binary_id,
            "name": inventory.binary.name,
            "versionInfo": inventory.binary.version,
            "primaryPackagePurpose": "APPLICATION",
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": false,
            "licenseDeclared": inventory.binary.license.as_deref().unwrap_or("NOASSERTION"),
            "licenseConcluded": "NOASSERTION",
            "copyrightText": "NOASSERTION",
            "comment": format!("installed at {}", inventory.binary.path),
        }),
    ];
    let mut relationships = vec![
        relationship("SPDXRef-DOCUMENT", "DESCRIBES", &image_id),
        relationship(&image_id, "CONTAINS", &binary_id),
    ];
    for deb in &inventory.debs {
        let id = ids.make("deb", &deb.name, &deb.version);
        packages.push(deb_package(&id, deb, inventory.distro.as_deref()));
        relationships.push(relationship(&image_id, "CONTAINS", &id));
    }
    let crate_ids: Vec<String> = inventory
        .crates
        .crates
        .iter()
        .map(|krate| ids.make("crate", &krate.name, &krate.version))
        .collect();
    for (krate, id) in inventory.crates.crates.iter().zip(&crate_ids) {
        packages.push(crate_package(id, krate));
        for &dependency in &krate.dependencies {
            relationships.push(relationship(id, "DEPENDS_ON", &crate_ids[dependency]));
        }
    }
    for &direct in &inventory.crates.direct {
        relationships.push(relationship(&binary_id, "DEPENDS_ON", &crate_ids[direct]));
    }
    json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": image.display(),
        "documentNamespace": format!(
            "https://spdx.org/spdxdocs/{}-{}",
            image.name.replace(['/', ':'], "-"),
            inventory.serial
        ),
        "creationInfo": {
            "created": inventory.created,
            "creators": [format!("Tool: cargo-xtask-{}", inventory.tool_version)],
            "comment": format!("source revision {}", inventory.revision),
        },
        "documentDescribes": [image_id],
        "packages": packages,
        "relationships": relationships,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_keep_only_what_spdx_allows_and_never_collide() {
        let mut ids = Ids(HashSet::new());
        assert_eq!(
            ids.make("deb", "libstdc++6", "1:1.3+deb13u1~x"),
            "SPDXRef-deb-libstdc--6-1-1.3-deb13u1-x"
        );
        assert_eq!(ids.make("deb", "a", "1+1"), "SPDXRef-deb-a-1-1");
        assert_eq!(ids.make("deb", "a", "1~1"), "SPDXRef-deb-a-1-1-2");
    }
}
