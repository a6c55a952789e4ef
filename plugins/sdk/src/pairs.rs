//! A `serde::Deserializer` over name/value string pairs (path parameters, the query string):
//! a struct reads its fields by name, a single value or a tuple reads the values in order,
//! and each value parses into the field's type (`true`, `42`, `2.5`, text).

use crate::alloc_prelude::*;

use core::fmt;

use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor};

/// Why a pair did not fit: the pair's name (when known) and what went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairError {
    /// the parameter at fault, empty when the shape itself is wrong
    pub name: String,
    /// what went wrong, in words for the client
    pub message: String,
}

impl fmt::Display for PairError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl core::error::Error for PairError {}

impl de::Error for PairError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Self { name: String::new(), message: msg.to_string() }
    }

    fn missing_field(field: &'static str) -> Self {
        Self { name: field.into(), message: "is required".into() }
    }
}

/// Deserialize `T` from `pairs`; the first of several pairs with one name wins.
pub fn from_pairs<T: de::DeserializeOwned>(pairs: &[(String, String)]) -> Result<T, PairError> {
    let mut unique: Vec<&(String, String)> = Vec::with_capacity(pairs.len());
    for pair in pairs {
        if !unique.iter().any(|(n, _)| *n == pair.0) {
            unique.push(pair);
        }
    }
    T::deserialize(Pairs { pairs: unique })
}

struct Pairs<'a> {
    pairs: Vec<&'a (String, String)>,
}

impl<'a> Pairs<'a> {
    fn single(&self) -> Result<Value<'a>, PairError> {
        match self.pairs.as_slice() {
            [(name, value)] => Ok(Value { name, raw: value }),
            _ => Err(de::Error::custom(format!(
                "expected exactly one parameter, found {}",
                self.pairs.len()
            ))),
        }
    }
}

macro_rules! via_single {
    ($($method:ident),*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, PairError> {
            self.single()?.$method(visitor)
        }
    )*};
}

impl<'de> de::Deserializer<'de> for Pairs<'_> {
    type Error = PairError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, PairError> {
        visitor.visit_map(PairMap { pairs: self.pairs.into_iter(), value: None })
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, PairError> {
        visitor.visit_seq(PairSeq { pairs: self.pairs.into_iter() })
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, PairError> {
        visitor.visit_newtype_struct(self)
    }

    via_single!(
        deserialize_bool,
        deserialize_i8,
        deserialize_i16,
        deserialize_i32,
        deserialize_i64,
        deserialize_u8,
        deserialize_u16,
        deserialize_u32,
        deserialize_u64,
        deserialize_f32,
        deserialize_f64,
        deserialize_char,
        deserialize_str,
        deserialize_string,
        deserialize_option
    );

    serde::forward_to_deserialize_any! {
        bytes byte_buf unit unit_struct seq tuple_struct map struct enum identifier ignored_any
    }
}

struct PairMap<'a, I> {
    pairs: I,
    value: Option<&'a (String, String)>,
}

impl<'de, 'a, I: Iterator<Item = &'a (String, String)>> MapAccess<'de> for PairMap<'a, I> {
    type Error = PairError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, PairError> {
        let Some(pair) = self.pairs.next() else {
            return Ok(None);
        };
        self.value = Some(pair);
        let name: de::value::StrDeserializer<'_, PairError> = pair.0.as_str().into_deserializer();
        seed.deserialize(name).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, PairError> {
        let (name, raw) = self
            .value
            .take()
            .ok_or_else(|| <PairError as de::Error>::custom("a value without its name"))?;
        seed.deserialize(Value { name, raw })
    }
}

struct PairSeq<I> {
    pairs: I,
}

impl<'de, 'a, I: Iterator<Item = &'a (String, String)>> SeqAccess<'de> for PairSeq<I> {
    type Error = PairError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, PairError> {
        match self.pairs.next() {
            None => Ok(None),
            Some((name, raw)) => seed.deserialize(Value { name, raw }).map(Some),
        }
    }
}

/// One named value, parsed into whatever its field asks for.
struct Value<'a> {
    name: &'a str,
    raw: &'a str,
}

impl Value<'_> {
    fn invalid(&self) -> PairError {
        PairError {
            name: self.name.into(),
            message: format!("`{}` is not a valid value", self.raw),
        }
    }

    fn parse<T: core::str::FromStr>(&self) -> Result<T, PairError> {
        self.raw.parse().map_err(|_| self.invalid())
    }

    /// Errors from deeper in (an enum variant) are about this pair.
    fn named(&self, err: PairError) -> PairError {
        if err.name.is_empty() { self.invalid() } else { err }
    }
}

macro_rules! parsed {
    ($($method:ident => $visit:ident as $t:ty),* $(,)?) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, PairError> {
            let value: $t = self.parse()?;
            visitor.$visit(value).map_err(|e| self.named(e))
        }
    )*};
}

impl<'de> de::Deserializer<'de> for Value<'_> {
    type Error = PairError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, PairError> {
        visitor.visit_str(self.raw).map_err(|e| self.named(e))
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, PairError> {
        let value = match self.raw {
            "true" | "1" => true,
            "false" | "0" => false,
            _ => return Err(self.invalid()),
        };
        visitor.visit_bool(value)
    }

    parsed! {
        deserialize_i8 => visit_i8 as i8,
        deserialize_i16 => visit_i16 as i16,
        deserialize_i32 => visit_i32 as i32,
        deserialize_i64 => visit_i64 as i64,
        deserialize_u8 => visit_u8 as u8,
        deserialize_u16 => visit_u16 as u16,
        deserialize_u32 => visit_u32 as u32,
        deserialize_u64 => visit_u64 as u64,
        deserialize_f32 => visit_f32 as f32,
        deserialize_f64 => visit_f64 as f64,
        deserialize_char => visit_char as char,
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, PairError> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, PairError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, PairError> {
        let raw: de::value::StrDeserializer<'_, PairError> = self.raw.into_deserializer();
        visitor.visit_enum(raw).map_err(|e| self.named(e))
    }

    serde::forward_to_deserialize_any! {
        str string bytes byte_buf unit unit_struct seq tuple tuple_struct map struct
        identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items.iter().map(|(n, v)| ((*n).into(), (*v).into())).collect()
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Filter {
        active: Option<bool>,
        limit: Option<i64>,
        name: Option<String>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "lowercase")]
    enum Mode {
        Enforce,
        Monitor,
    }

    #[test]
    fn a_struct_reads_its_fields_by_name_and_type() {
        let f: Filter =
            from_pairs(&pairs(&[("active", "true"), ("limit", "5"), ("x", "y")])).unwrap();
        assert_eq!(f, Filter { active: Some(true), limit: Some(5), name: None });
    }

    #[test]
    fn the_first_of_repeated_names_wins() {
        let f: Filter = from_pairs(&pairs(&[("limit", "1"), ("limit", "2")])).unwrap();
        assert_eq!(f.limit, Some(1));
    }

    #[test]
    fn a_bad_value_names_its_parameter() {
        let e = from_pairs::<Filter>(&pairs(&[("limit", "ten")])).unwrap_err();
        assert_eq!(e.name, "limit");
        assert_eq!(e.message, "`ten` is not a valid value");
        let e = from_pairs::<Filter>(&pairs(&[("active", "maybe")])).unwrap_err();
        assert_eq!(e.name, "active");
    }

    #[test]
    fn one_value_and_tuples_read_in_order() {
        let id: String = from_pairs(&pairs(&[("id", "abc")])).unwrap();
        assert_eq!(id, "abc");
        let n: i64 = from_pairs(&pairs(&[("n", "7")])).unwrap();
        assert_eq!(n, 7);
        let (a, b): (String, u32) = from_pairs(&pairs(&[("a", "x"), ("b", "3")])).unwrap();
        assert_eq!((a.as_str(), b), ("x", 3));
    }

    #[test]
    fn enums_read_their_variant_names() {
        #[derive(Debug, Deserialize)]
        struct Q {
            mode: Mode,
        }
        let q: Q = from_pairs(&pairs(&[("mode", "monitor")])).unwrap();
        assert_eq!(q.mode, Mode::Monitor);
        let e = from_pairs::<Q>(&pairs(&[("mode", "loud")])).unwrap_err();
        assert_eq!(e.name, "mode");
        let _ = Mode::Enforce;
    }

    #[test]
    fn a_missing_required_field_is_named() {
        #[derive(Debug, Deserialize)]
        struct Q {
            #[allow(dead_code)]
            subject: String,
        }
        let e = from_pairs::<Q>(&[]).unwrap_err();
        assert_eq!(e.name, "subject");
    }
}
