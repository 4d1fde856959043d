//! Loading and validating policy bundles.

use std::fs;
use std::path::Path;
use std::sync::Arc;

use gatehouse_pdp::{Bundle, CurrentBundle, Problem};

mod common;
use common::{repo, scratch_bundle};

fn refused(dir: &Path) -> Vec<Problem> {
    Bundle::load(dir).unwrap_err().problems().to_vec()
}

#[test]
fn the_base_bundle_is_valid_and_every_policy_is_annotated() {
    let bundle = Bundle::load(repo().join("policies")).unwrap();
    assert_eq!(&*bundle.id().name, "gatehouse-base");
    assert!(bundle.id().hash.starts_with("sha256:") && bundle.id().hash.len() == 71);
    let isolation = &bundle.sources()["tenant-isolation"];
    assert_eq!(isolation.file, Path::new("00-tenant.cedar"));
    assert_eq!(isolation.line, 4);
    assert!(!isolation.purpose.is_empty());
    // The template and its link are part of the bundle.
    assert!(
        bundle
            .policies()
            .template(&"support-access".parse().unwrap())
            .is_some()
    );
    assert!(
        bundle
            .sources()
            .contains_key("support-access:acme-legal:sam")
    );
    assert!(bundle.warnings().is_empty(), "{:?}", bundle.warnings());
}

#[test]
fn the_hash_covers_content_and_nothing_else() {
    let (_tmp, dir) = scratch_bundle();
    let first = Bundle::load(&dir).unwrap().id().hash.clone();
    assert_eq!(
        Bundle::load(&dir).unwrap().id().hash,
        first,
        "stable across loads"
    );
    let file = dir.join("10-roles.cedar");
    let text = fs::read_to_string(&file).unwrap();
    fs::write(&file, format!("{text}\n// a comment changes the content\n")).unwrap();
    assert_ne!(Bundle::load(&dir).unwrap().id().hash, first);
}

#[test]
fn a_syntax_error_names_file_and_line() {
    let (_tmp, dir) = scratch_bundle();
    fs::write(
        dir.join("50-broken.cedar"),
        "// first line\n@id(\"broken\")\n@purpose(\"x\")\npermit (principal, action, resource)\nwhen { principal.tenant == };\n",
    )
    .unwrap();
    let problems = refused(&dir);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].file, Path::new("50-broken.cedar"));
    assert_eq!(problems[0].line, Some(5));
}

#[test]
fn a_type_error_names_file_line_and_policy() {
    let (_tmp, dir) = scratch_bundle();
    fs::write(
        dir.join("50-typo.cedar"),
        "\n\n@id(\"typo\")\n@purpose(\"reads an attribute that does not exist\")\npermit (principal is User, action, resource)\nwhen { principal.department == \"x\" };\n",
    )
    .unwrap();
    let problems = refused(&dir);
    assert!(!problems.is_empty());
    for p in &problems {
        assert_eq!(p.file, Path::new("50-typo.cedar"), "{p}");
        assert_eq!(p.line, Some(3), "{p}");
        assert_eq!(p.policy.as_deref(), Some("typo"), "{p}");
    }
    assert!(
        problems.iter().any(|p| p.message.contains("department")),
        "{problems:?}"
    );
}

#[test]
fn every_policy_needs_an_id_and_a_purpose_and_ids_are_unique() {
    let (_tmp, dir) = scratch_bundle();
    fs::write(
        dir.join("50-sloppy.cedar"),
        "permit (principal, action, resource) when { false };\n\
         @id(\"no-purpose\")\npermit (principal, action, resource) when { false };\n\
         @id(\"role-viewer\")\n@purpose(\"same id as another policy\")\npermit (principal, action, resource) when { false };\n",
    )
    .unwrap();
    let rendered: Vec<String> = refused(&dir).iter().map(ToString::to_string).collect();
    let all = rendered.join("\n");
    assert!(
        all.contains("50-sloppy.cedar:1: policy has no @id"),
        "{all}"
    );
    assert!(
        all.contains("50-sloppy.cedar:2: policy `no-purpose`: policy needs a one-line @purpose"),
        "{all}"
    );
    assert!(all.contains("50-sloppy.cedar:4: policy `role-viewer`: duplicate policy id, first used at 10-roles.cedar:"), "{all}");
}

#[test]
fn a_link_to_an_unknown_template_or_a_bad_uid_is_refused() {
    let (_tmp, dir) = scratch_bundle();
    fs::write(
        dir.join("links.toml"),
        "[[link]]\nid = \"a\"\ntemplate = \"no-such-template\"\nprincipal = 'User::\"x\"'\nresource = 'Folder::\"y\"'\n\n\
         [[link]]\nid = \"b\"\ntemplate = \"support-access\"\nprincipal = 'User::x'\nresource = 'Folder::\"y\"'\n",
    )
    .unwrap();
    let problems = refused(&dir);
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert_eq!(
        (problems[0].policy.as_deref(), problems[0].line),
        (Some("a"), Some(2))
    );
    assert_eq!(
        (problems[1].policy.as_deref(), problems[1].line),
        (Some("b"), Some(8))
    );
}

#[test]
fn a_missing_schema_or_manifest_is_refused() {
    let (_tmp, dir) = scratch_bundle();
    fs::remove_file(dir.join("../schemas/gatehouse.cedarschema")).unwrap();
    let problems = refused(&dir);
    assert!(
        problems[0].message.starts_with("cannot read"),
        "{problems:?}"
    );
    fs::remove_file(dir.join("bundle.toml")).unwrap();
    assert_eq!(refused(&dir)[0].file, Path::new("bundle.toml"));
}

#[test]
fn a_refused_reload_keeps_the_serving_bundle() {
    let (_tmp, dir) = scratch_bundle();
    let current = Arc::new(CurrentBundle::new(Bundle::load(&dir).unwrap()));
    let serving = current.snapshot().id().clone();
    fs::write(dir.join("50-broken.cedar"), "permit (").unwrap();
    let err = current.reload(&dir).unwrap_err();
    assert!(err.to_string().contains("50-broken.cedar"), "{err}");
    assert_eq!(current.snapshot().id(), &serving);
    fs::remove_file(dir.join("50-broken.cedar")).unwrap();
    fs::write(
        dir.join("50-extra.cedar"),
        "@id(\"extra\")\n@purpose(\"p\")\nforbid (principal, action, resource) when { false };\n",
    )
    .unwrap();
    let new = current.reload(&dir).unwrap();
    assert_ne!(new, serving);
    assert_eq!(current.snapshot().id(), &new);
}
