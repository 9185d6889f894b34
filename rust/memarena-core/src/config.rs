//! Serde helpers for the config types of the core crates.
//!
//! Configs cross from Python as dicts that `memarena-py` deserializes into
//! the core's config structs with serde in one call; the structs carry
//! `#[serde(deny_unknown_fields)]` and no `#[serde(default)]` (the Python
//! `Config` dataclasses hold the defaults, and the Python side sends every
//! field). Three shapes need help beyond `#[derive(Deserialize)]`:
//!
//! - [`Tagged`]: an enum whose map's `kind` key selects the variant and
//!   whose other keys are that variant's fields
//!   (`{"kind": "paged", "block_size": 16, ...}`). Unlike serde's internally
//!   tagged enums the other keys are not buffered first, so an error deep
//!   inside a variant still carries its key path (`kv.block_size`). The tag
//!   must come first in the map; the binding puts it there.
//! - [`strict_bool`]: a bool field that accepts only a bool (some formats
//!   otherwise read any value as its truth value).
//! - [`required`]: an `Option` field whose key must be present (null for
//!   `None`), where serde would otherwise read a missing key as `None`.

use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::value::MapAccessDeserializer;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};

/// The key that selects the variant of a [`Tagged`] enum.
pub const TAG: &str = "kind";

/// An enum read from a map whose [`TAG`] key names the variant.
///
/// Implement [`Tagged::variant`] and forward `Deserialize::deserialize` to
/// [`deserialize_tagged`].
pub trait Tagged: Sized {
    /// The variant names, in the order messages list them.
    const KINDS: &'static [&'static str];

    /// Builds variant `kind` (one of [`Tagged::KINDS`]) from the map's other
    /// entries; [`fields`] reads them into a struct.
    fn variant<'de, A: MapAccess<'de>>(kind: &'static str, rest: A) -> Result<Self, A::Error>;

    /// The value a bare non-negative integer stands for, where the enum
    /// allows that shorthand (a fixed length); `None`: not allowed.
    fn from_u64(_value: u64) -> Option<Self> {
        None
    }
}

/// Reads a [`Tagged`] enum: a map with the tag first (or, where the enum
/// allows it, a bare integer).
pub fn deserialize_tagged<'de, D: Deserializer<'de>, T: Tagged>(d: D) -> Result<T, D::Error> {
    d.deserialize_any(TaggedVisitor(PhantomData))
}

/// Reads the remaining entries of a map into `T` (a variant's fields).
pub fn fields<'de, A: MapAccess<'de>, T: Deserialize<'de>>(rest: A) -> Result<T, A::Error> {
    T::deserialize(MapAccessDeserializer::new(rest))
}

/// The fields of a variant that has none: refuses any key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoFields {}

struct TaggedVisitor<T>(PhantomData<T>);

impl<'de, T: Tagged> Visitor<'de> for TaggedVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "a map whose first key `{TAG}` is one of {}",
            T::KINDS.join(", ")
        )
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        T::from_u64(v).ok_or_else(|| E::invalid_type(de::Unexpected::Unsigned(v), &self))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<T, A::Error> {
        match map.next_key::<String>()? {
            Some(k) if k == TAG => {}
            Some(k) => {
                return Err(de::Error::custom(format!(
                    "`{TAG}` must be the first key, found `{k}` first"
                )));
            }
            None => return Err(de::Error::missing_field(TAG)),
        }
        let kind = map.next_value_seed(KindSeed(T::KINDS))?;
        T::variant(kind, map)
    }
}

/// Reads a string that must be one of the given names.
struct KindSeed(&'static [&'static str]);

impl<'de> DeserializeSeed<'de> for KindSeed {
    type Value = &'static str;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<&'static str, D::Error> {
        let s = String::deserialize(d)?;
        self.0
            .iter()
            .copied()
            .find(|k| *k == s)
            .ok_or_else(|| de::Error::unknown_variant(&s, self.0))
    }
}

/// The names a unit-variant enum deserializes from (its serde names), read
/// from its `Deserialize` impl: one source for the vocabulary the core
/// accepts. Empty for a type that does not deserialize as an enum.
pub fn variant_names<T: for<'de> Deserialize<'de>>() -> &'static [&'static str] {
    let names = std::cell::Cell::new(&[][..]);
    let _ = T::deserialize(Probe(&names));
    names.get()
}

/// The keys a struct deserializes from (its serde field names, without
/// skipped ones), read from its `Deserialize` impl. Empty for a type that
/// does not deserialize as a struct.
pub fn field_names<T: for<'de> Deserialize<'de>>() -> &'static [&'static str] {
    let names = std::cell::Cell::new(&[][..]);
    let _ = T::deserialize(Probe(&names));
    names.get()
}

/// A deserializer that records the names an enum or struct asks for and
/// fails.
struct Probe<'a>(&'a std::cell::Cell<&'static [&'static str]>);

impl<'de> Deserializer<'de> for Probe<'_> {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("probe"))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.set(variants);
        Err(de::Error::custom("probe"))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.set(fields);
        Err(de::Error::custom("probe"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map identifier ignored_any
    }
}

/// A bool that must be given as a bool.
pub fn strict_bool<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    struct V;
    impl Visitor<'_> for V {
        type Value = bool;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a bool")
        }
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<bool, E> {
            Ok(v)
        }
    }
    d.deserialize_any(V)
}

/// An `Option` whose key must be present (null stands for `None`).
pub fn required<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    Option::<T>::deserialize(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::de::value::{Error as ValueError, MapDeserializer};

    #[derive(Debug, PartialEq, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Size {
        n: u32,
    }

    #[derive(Debug, PartialEq)]
    enum Shape {
        Sized(Size),
        Empty,
        Bare(u64),
    }

    impl Tagged for Shape {
        const KINDS: &'static [&'static str] = &["sized", "empty"];
        fn variant<'de, A: MapAccess<'de>>(kind: &'static str, rest: A) -> Result<Self, A::Error> {
            Ok(match kind {
                "sized" => Shape::Sized(fields(rest)?),
                _ => {
                    fields::<_, NoFields>(rest)?;
                    Shape::Empty
                }
            })
        }
        fn from_u64(v: u64) -> Option<Self> {
            Some(Shape::Bare(v))
        }
    }

    impl<'de> Deserialize<'de> for Shape {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            deserialize_tagged(d)
        }
    }

    fn read(entries: &[(&str, &str)]) -> Result<Shape, ValueError> {
        let it = entries.iter().map(|(k, v)| (*k, *v));
        Shape::deserialize(MapDeserializer::<_, ValueError>::new(it))
    }

    #[test]
    fn tag_selects_the_variant_and_the_rest_are_its_fields() {
        assert_eq!(read(&[("kind", "empty")]).unwrap(), Shape::Empty);
        let err = read(&[("kind", "empty"), ("n", "1")]).unwrap_err();
        assert!(err.to_string().contains("unknown field `n`"), "{err}");
        let err = read(&[("kind", "round")]).unwrap_err().to_string();
        assert!(
            err.contains("unknown variant `round`, expected `sized` or `empty`"),
            "{err}"
        );
        let err = read(&[("n", "1"), ("kind", "sized")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`kind` must be the first key, found `n`"),
            "{err}"
        );
        let err = read(&[]).unwrap_err().to_string();
        assert!(err.contains("missing field `kind`"), "{err}");
    }

    #[test]
    fn bare_integers_where_allowed() {
        use serde::de::IntoDeserializer;
        let d: de::value::U64Deserializer<ValueError> = 7u64.into_deserializer();
        assert_eq!(Shape::deserialize(d).unwrap(), Shape::Bare(7));
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "snake_case")]
    #[allow(dead_code)]
    enum Mode {
        Off,
        LastAdmitted,
    }

    #[test]
    fn names_come_from_the_deserialize_impls() {
        assert_eq!(variant_names::<Mode>(), ["off", "last_admitted"]);
        assert_eq!(field_names::<Size>(), ["n"]);
        assert!(variant_names::<u32>().is_empty());
    }

    #[test]
    fn strict_bool_refuses_other_types() {
        use serde::de::IntoDeserializer;
        let d: de::value::BoolDeserializer<ValueError> = true.into_deserializer();
        assert!(strict_bool(d).unwrap());
        let d: de::value::StrDeserializer<ValueError> = "yes".into_deserializer();
        assert!(strict_bool(d).is_err());
    }
}
