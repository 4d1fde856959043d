//! What a principal may read, as a condition on the resource.
//!
//! The decision point evaluates the policies for one principal, one action and one
//! resource *type* with the resource itself unknown; what is left is a [`Filter`]: a
//! condition on the resource's attributes and ancestors, in Cedar's own terms. Adapters
//! translate it into their storage's terms (an SQL predicate, a search engine filter) so
//! that pages and counts hold exactly the resources the decision point would allow.
//!
//! A filter is only ever produced from policies whose every remaining condition could be
//! translated; anything else makes the decision point say "no filter", and the adapter
//! takes a slower path that decides item by item. A filter never widens access: an
//! adapter that meets a term it cannot express must fall back the same way.

use std::fmt;

/// An entity, by type and id (e.g. `Folder::"f-1"`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntityRef {
    /// The entity type's name, e.g. `Folder`.
    pub entity_type: String,
    /// The entity id, unescaped.
    pub id: String,
}

impl EntityRef {
    /// An entity reference.
    pub fn new(entity_type: impl Into<String>, id: impl Into<String>) -> Self {
        Self {
            entity_type: entity_type.into(),
            id: id.into(),
        }
    }
}

impl fmt::Display for EntityRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::uid::uid_text(&self.entity_type, &self.id))
    }
}

/// A value an attribute of the resource is compared with.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scalar {
    /// A boolean.
    Bool(bool),
    /// A long integer.
    Long(i64),
    /// A string.
    String(String),
    /// An entity.
    Entity(EntityRef),
}

/// A condition on the resource.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Filter {
    /// Every resource.
    Always,
    /// No resource.
    Never,
    /// All of these hold.
    All(Vec<Filter>),
    /// At least one of these holds.
    Any(Vec<Filter>),
    /// This does not hold.
    Not(Box<Filter>),
    /// `resource.<attr> == value`.
    Equals {
        /// The attribute's name.
        attr: String,
        /// The value it must have.
        value: Scalar,
    },
    /// `resource has <attr>`: the resource has that (optional) attribute.
    Has(String),
    /// `resource == entity`.
    Is(EntityRef),
    /// `resource in entity`: the resource is that entity or lies below it (in a folder's
    /// subtree, under a grant node).
    In(EntityRef),
}

impl Filter {
    /// All of `parts`, simplified: `Never` if one is, `Always` if there are none.
    pub fn all(parts: impl IntoIterator<Item = Filter>) -> Filter {
        let mut kept = Vec::new();
        for part in parts {
            match part {
                Filter::Always => {}
                Filter::Never => return Filter::Never,
                Filter::All(inner) => extend_unique(&mut kept, inner),
                other => extend_unique(&mut kept, [other]),
            }
        }
        match kept.len() {
            0 => Filter::Always,
            1 => kept.pop().unwrap_or(Filter::Always),
            _ => Filter::All(kept),
        }
    }

    /// Any of `parts`, simplified: `Always` if one is, `Never` if there are none.
    pub fn any(parts: impl IntoIterator<Item = Filter>) -> Filter {
        let mut kept = Vec::new();
        for part in parts {
            match part {
                Filter::Never => {}
                Filter::Always => return Filter::Always,
                Filter::Any(inner) => extend_unique(&mut kept, inner),
                other => extend_unique(&mut kept, [other]),
            }
        }
        match kept.len() {
            0 => Filter::Never,
            1 => kept.pop().unwrap_or(Filter::Never),
            _ => Filter::Any(kept),
        }
    }

    /// The negation, simplified.
    pub fn negate(self) -> Filter {
        match self {
            Filter::Always => Filter::Never,
            Filter::Never => Filter::Always,
            Filter::Not(inner) => *inner,
            other => Filter::Not(Box::new(other)),
        }
    }
}

/// Adds the parts not already there (policies often repeat a condition, such as the
/// tenant's).
fn extend_unique(kept: &mut Vec<Filter>, parts: impl IntoIterator<Item = Filter>) {
    for part in parts {
        if !kept.contains(&part) {
            kept.push(part);
        }
    }
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let joined = |f: &mut fmt::Formatter<'_>, parts: &[Filter], op: &str| {
            write!(f, "(")?;
            for (i, part) in parts.iter().enumerate() {
                if i > 0 {
                    write!(f, " {op} ")?;
                }
                write!(f, "{part}")?;
            }
            write!(f, ")")
        };
        match self {
            Filter::Always => write!(f, "true"),
            Filter::Never => write!(f, "false"),
            Filter::All(parts) => joined(f, parts, "&&"),
            Filter::Any(parts) => joined(f, parts, "||"),
            Filter::Not(inner) => write!(f, "!{inner}"),
            Filter::Equals { attr, value } => write!(f, "resource.{attr} == {value}"),
            Filter::Has(attr) => write!(f, "resource has {attr}"),
            Filter::Is(entity) => write!(f, "resource == {entity}"),
            Filter::In(entity) => write!(f, "resource in {entity}"),
        }
    }
}

impl fmt::Display for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scalar::Bool(b) => write!(f, "{b}"),
            Scalar::Long(n) => write!(f, "{n}"),
            Scalar::String(s) => write!(f, "{s:?}"),
            Scalar::Entity(e) => write!(f, "{e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(id: &str) -> Filter {
        Filter::Equals {
            attr: "owner".into(),
            value: Scalar::Entity(EntityRef::new("User", id)),
        }
    }

    #[test]
    fn constants_fold_away() {
        assert_eq!(Filter::all([Filter::Always, owner("a")]), owner("a"));
        assert_eq!(Filter::all([owner("a"), Filter::Never]), Filter::Never);
        assert_eq!(Filter::any([Filter::Never, owner("a")]), owner("a"));
        assert_eq!(Filter::any([owner("a"), Filter::Always]), Filter::Always);
        assert_eq!(Filter::all([]), Filter::Always);
        assert_eq!(Filter::any([]), Filter::Never);
        assert_eq!(owner("a").negate().negate(), owner("a"));
        assert_eq!(Filter::Always.negate(), Filter::Never);
    }

    #[test]
    fn repeated_conditions_count_once() {
        let f = Filter::all([owner("a"), Filter::all([owner("b"), owner("a")])]);
        assert_eq!(f, Filter::All(vec![owner("a"), owner("b")]));
    }

    #[test]
    fn nested_groups_flatten() {
        let nested = Filter::any([Filter::any([owner("a"), owner("b")]), owner("c")]);
        assert_eq!(
            nested,
            Filter::Any(vec![owner("a"), owner("b"), owner("c")])
        );
    }

    #[test]
    fn displays_like_cedar() {
        let f = Filter::all([
            Filter::In(EntityRef::new("Folder", "f")),
            owner("a").negate(),
        ]);
        assert_eq!(
            f.to_string(),
            r#"(resource in Folder::"f" && !resource.owner == User::"a")"#
        );
    }
}
