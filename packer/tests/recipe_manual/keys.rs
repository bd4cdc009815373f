//! The keys a recipe may have, read from the serde structs themselves: a [`Deserializer`] that
//! answers every request with a placeholder and records, per table, the field names that
//! `deserialize_struct` is given (the derive's own `FIELDS`, renames and `#[serde(skip)]`
//! applied), descending into every field's value so nested tables are found too.
//!
//! Invariants: a key is recorded as its dotted path (`capture.trace-timeout`); an array's
//! element and an option's content are recorded at the array's or option's own path, so
//! `[[capture.unit]]` keys are `capture.unit.name` ...; free-form tables (`env`, `files`) are
//! visited with no entries, so their user-chosen keys are not recipe keys; enum variants are
//! recorded separately, as the values a key accepts.

use std::collections::{BTreeMap, BTreeSet};

use serde::de::value::{BorrowedStrDeserializer, Error};
use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};
use serde::Deserialize;

/// What the recorder saw.
#[derive(Debug, Default)]
pub struct Schema {
    /// Every key, as a dotted path: tables (`capture`) and the keys in them (`capture.paths`).
    pub keys: BTreeSet<String>,
    /// The variant names of each enum-valued key (`permissions.landlock`: `best-effort`, ...).
    pub variants: BTreeMap<String, Vec<String>>,
}

/// The schema of `T`, read by deserializing one placeholder value of it.
pub fn schema_of<'de, T: Deserialize<'de>>() -> Schema {
    let mut schema = Schema::default();
    T::deserialize(Recorder {
        path: String::new(),
        schema: &mut schema,
    })
    .expect("the recorder satisfies every serde request");
    schema
}

struct Recorder<'a> {
    path: String,
    schema: &'a mut Schema,
}

impl Recorder<'_> {
    fn child(&mut self, key: &str) -> Recorder<'_> {
        let path = match self.path.as_str() {
            "" => key.to_owned(),
            p => format!("{p}.{key}"),
        };
        Recorder {
            path,
            schema: self.schema,
        }
    }
    fn same(&mut self) -> Recorder<'_> {
        Recorder {
            path: self.path.clone(),
            schema: self.schema,
        }
    }
}

/// Scalars get a placeholder of the type asked for; `any` (untagged enums) gets `false`.
macro_rules! placeholder {
    ($($method:ident => $visit:ident($($value:expr)?)),* $(,)?) => {
        $(fn $method<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
            v.$visit($($value)?)
        })*
    };
}

impl<'de> de::Deserializer<'de> for Recorder<'_> {
    type Error = Error;

    placeholder! {
        deserialize_any => visit_bool(false),
        deserialize_bool => visit_bool(false),
        deserialize_i8 => visit_i8(1),
        deserialize_i16 => visit_i16(1),
        deserialize_i32 => visit_i32(1),
        deserialize_i64 => visit_i64(1),
        deserialize_u8 => visit_u8(1),
        deserialize_u16 => visit_u16(1),
        deserialize_u32 => visit_u32(1),
        deserialize_u64 => visit_u64(1),
        deserialize_f32 => visit_f32(1.0),
        deserialize_f64 => visit_f64(1.0),
        deserialize_char => visit_char('x'),
        deserialize_str => visit_str("x"),
        deserialize_string => visit_str("x"),
        deserialize_bytes => visit_bytes(b"x"),
        deserialize_byte_buf => visit_bytes(b"x"),
        deserialize_identifier => visit_str("x"),
        deserialize_ignored_any => visit_unit(),
        deserialize_unit => visit_unit(),
    }

    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_some(self)
    }
    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        v: V,
    ) -> Result<V::Value, Error> {
        v.visit_unit()
    }
    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        v: V,
    ) -> Result<V::Value, Error> {
        v.visit_newtype_struct(self)
    }
    fn deserialize_seq<V: Visitor<'de>>(mut self, v: V) -> Result<V::Value, Error> {
        v.visit_seq(OneElement(Some(self.same())))
    }
    fn deserialize_tuple<V: Visitor<'de>>(self, _: usize, v: V) -> Result<V::Value, Error> {
        self.deserialize_seq(v)
    }
    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: usize,
        v: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_seq(v)
    }
    fn deserialize_map<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_map(de::value::MapDeserializer::new(
            std::iter::empty::<((), ())>(),
        ))
    }
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, Error> {
        v.visit_map(Fields {
            parent: self,
            fields: fields.iter(),
            current: "",
        })
    }
    fn deserialize_enum<V: Visitor<'de>>(
        mut self,
        _: &'static str,
        variants: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, Error> {
        let names = variants.iter().map(|s| (*s).to_owned()).collect();
        self.schema.variants.insert(self.path.clone(), names);
        let first = variants.first().copied().unwrap_or("x");
        v.visit_enum(Variant {
            name: first,
            value: self.same(),
        })
    }
}

/// A sequence of one placeholder element, recorded at the sequence's path.
struct OneElement<'a>(Option<Recorder<'a>>);

impl<'de> de::SeqAccess<'de> for OneElement<'_> {
    type Error = Error;
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        self.0.take().map(|r| seed.deserialize(r)).transpose()
    }
}

/// A struct's fields, each recorded, then visited with a child recorder.
struct Fields<'a> {
    parent: Recorder<'a>,
    fields: std::slice::Iter<'static, &'static str>,
    current: &'static str,
}

impl<'de> de::MapAccess<'de> for Fields<'_> {
    type Error = Error;
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        let Some(field) = self.fields.next() else {
            return Ok(None);
        };
        self.current = field;
        let path = self.parent.child(field).path;
        self.parent.schema.keys.insert(path);
        seed.deserialize(BorrowedStrDeserializer::new(field))
            .map(Some)
    }
    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        seed.deserialize(self.parent.child(self.current))
    }
}

/// An enum value: its first variant, with a placeholder content when it has one.
struct Variant<'a> {
    name: &'static str,
    value: Recorder<'a>,
}

impl<'de, 'a> de::EnumAccess<'de> for Variant<'a> {
    type Error = Error;
    type Variant = Recorder<'a>;
    fn variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<(S::Value, Recorder<'a>), Error> {
        let tag = seed.deserialize(self.name.into_deserializer())?;
        Ok((tag, self.value))
    }
}

impl<'de> de::VariantAccess<'de> for Recorder<'_> {
    type Error = Error;
    fn unit_variant(self) -> Result<(), Error> {
        Ok(())
    }
    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Error> {
        seed.deserialize(self)
    }
    fn tuple_variant<V: Visitor<'de>>(self, len: usize, v: V) -> Result<V::Value, Error> {
        de::Deserializer::deserialize_tuple(self, len, v)
    }
    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, Error> {
        de::Deserializer::deserialize_struct(self, "", fields, v)
    }
}
