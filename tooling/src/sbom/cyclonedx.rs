//! The inventory as a CycloneDX 1.6 JSON document.

use serde_json::{Value, json};

use super::{Inventory, purl};

pub fn document(inventory: &Inventory) -> Value {
    let image = &inventory.image;
    let image_ref = image.purl();
    let binary_ref = format!("binary:{}", inventory.binary.path);
    let mut components = vec![{
        let mut binary = json!({
            "type": "application",
            "bom-ref": binary_ref,
            "name": inventory.binary.name,
            "version": inventory.binary.version,
            "properties": [{"name": "xtask:path", "value": inventory.binary.path}],
        });
        if let Some(license) = &inventory.binary.license {
            binary["licenses"] = json!([{"expression": license}]);
        }
        binary
    }];
    let mut image_contains = vec![Value::from(binary_ref.clone())];
    for deb in &inventory.debs {
        let purl = purl::deb(deb, inventory.distro.as_deref());
        let mut component = json!({
            "type": "library",
            "bom-ref": purl,
            "name": deb.name,
            "version": deb.version,
            "supplier": {"name": "Debian"},
            "purl": purl,
        });
        if let Some(source) = &deb.source {
            let version = deb.source_version.as_deref().unwrap_or(&deb.version);
            component["properties"] = json!([
                {"name": "xtask:debian:source", "value": source},
                {"name": "xtask:debian:source-version", "value": version},
            ]);
        }
        image_contains.push(purl.into());
        components.push(component);
    }
    let crate_refs: Vec<String> = inventory.crates.crates.iter().map(purl::cargo).collect();
    let mut dependencies = vec![
        json!({"ref": image_ref, "dependsOn": image_contains}),
        json!({
            "ref": binary_ref,
            "dependsOn": inventory.crates.direct.iter().map(|&i| &crate_refs[i]).collect::<Vec<_>>(),
        }),
    ];
    for (krate, bom_ref) in inventory.crates.crates.iter().zip(&crate_refs) {
        let mut component = json!({
            "type": "library",
            "bom-ref": bom_ref,
            "name": krate.name,
            "version": krate.version,
            "purl": bom_ref,
        });
        if let Some(license) = &krate.license {
            component["licenses"] = json!([{"expression": license}]);
        }
        if let Some(sum) = &krate.checksum {
            component["hashes"] = json!([{"alg": "SHA-256", "content": sum}]);
        }
        components.push(component);
        dependencies.push(json!({
            "ref": bom_ref,
            "dependsOn": krate.dependencies.iter().map(|&i| &crate_refs[i]).collect::<Vec<_>>(),
        }));
    }
    let mut image_component = json!({
        "type": "container",
        "bom-ref": image_ref,
        "name": image.name,
        "version": image.tag.as_deref().unwrap_or(&image.id),
        "purl": image_ref,
        "hashes": [{"alg": "SHA-256", "content": image.id_hex()}],
    });
    if let Some(digest) = &image.digest {
        image_component["properties"] = json!([{"name": "xtask:registry-digest", "value": digest}]);
    }
    json!({
        "$schema": "http://cyclonedx.org/schema/bom-1.6.schema.json",
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "serialNumber": format!("urn:uuid:{}", inventory.serial),
        "version": 1,
        "metadata": {
            "timestamp": inventory.created,
            "tools": {"components": [{
                "type": "application",
                "name": "cargo-xtask",
                "version": inventory.tool_version,
            }]},
            "component": image_component,
            "properties": [{"name": "xtask:source-revision", "value": inventory.revision}],
        },
        "components": components,
        "dependencies": dependencies,
    })
}
