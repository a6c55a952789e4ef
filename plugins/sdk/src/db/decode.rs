//! A `serde::Deserializer` for result rows: a struct reads its fields by column name, a tuple
//! reads the columns in order. Values convert the way both engines need: SQLite answers
//! booleans as integers and PostgreSQL as booleans, and both read as `bool`; numbers read as
//! text and text that holds a number reads as a number.

use crate::alloc_prelude::*;

use core::fmt;

use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor};

use super::Value;

/// A row that does not fit the type it is read into: the column and what went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub String);

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl core::error::Error for DecodeError {}

impl de::Error for DecodeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Self(msg.to_string())
    }
    fn missing_field(field: &'static str) -> Self {
        Self(format!("query has no column `{field}`"))
    }
}

/// One row: its columns' names and values.
pub(crate) struct RowDe<'a> {
    pub columns: &'a [String],
    pub values: &'a [Value],
}

impl<'de> de::Deserializer<'de> for RowDe<'_> {
    type Error = DecodeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_map(Columns {
            columns: self.columns.iter(),
            values: self.values.iter(),
            next: None,
        })
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        visitor.visit_seq(InOrder { columns: self.columns.iter(), values: self.values.iter() })
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 u8 u16 u32 u64 f32 f64 char str string bytes byte_buf option unit
        unit_struct newtype_struct seq tuple_struct map struct enum identifier ignored_any
    }
}

struct Columns<'a, C, V> {
    columns: C,
    values: V,
    next: Option<(&'a str, &'a Value)>,
}

impl<'de, 'a, C, V> MapAccess<'de> for Columns<'a, C, V>
where
    C: Iterator<Item = &'a String>,
    V: Iterator<Item = &'a Value>,
{
    type Error = DecodeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DecodeError> {
        let (Some(column), Some(value)) = (self.columns.next(), self.values.next()) else {
            return Ok(None);
        };
        self.next = Some((column, value));
        let name: de::value::StrDeserializer<'_, DecodeError> = column.as_str().into_deserializer();
        seed.deserialize(name).map(Some)
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<S::Value, DecodeError> {
        let (column, value) =
            self.next.take().ok_or_else(|| DecodeError("a value without its column".into()))?;
        seed.deserialize(Cell { column, value })
    }
}

struct InOrder<C, V> {
    columns: C,
    values: V,
}

impl<'de, 'a, C, V> SeqAccess<'de> for InOrder<C, V>
where
    C: Iterator<Item = &'a String>,
    V: Iterator<Item = &'a Value>,
{
    type Error = DecodeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DecodeError> {
        match (self.columns.next(), self.values.next()) {
            (Some(column), Some(value)) => seed.deserialize(Cell { column, value }).map(Some),
            _ => Ok(None),
        }
    }
}

/// One value of one column.
pub(crate) struct Cell<'a> {
    pub column: &'a str,
    pub value: &'a Value,
}

impl Cell<'_> {
    fn is_null(&self) -> bool {
        matches!(
            self.value,
            Value::Text(None)
                | Value::Int(None)
                | Value::Float(None)
                | Value::Boolean(None)
                | Value::Blob(None)
        )
    }

    fn mismatch(&self, wanted: &str) -> DecodeError {
        if self.is_null() {
            let noun = wanted.trim_start_matches("an ").trim_start_matches("a ");
            DecodeError(format!("column `{}` is not a non-null {noun}", self.column))
        } else {
            DecodeError(format!("column `{}` is not {wanted}", self.column))
        }
    }

    fn int(&self) -> Result<i64, DecodeError> {
        match self.value {
            Value::Int(Some(n)) => Ok(*n),
            Value::Boolean(Some(b)) => Ok(i64::from(*b)),
            Value::Text(Some(s)) => s.parse().map_err(|_| self.mismatch("an integer")),
            _ => Err(self.mismatch("an integer")),
        }
    }

    fn float(&self) -> Result<f64, DecodeError> {
        match self.value {
            Value::Float(Some(n)) => Ok(*n),
            Value::Int(Some(n)) => Ok(*n as f64),
            Value::Text(Some(s)) => s.parse().map_err(|_| self.mismatch("a number")),
            _ => Err(self.mismatch("a number")),
        }
    }

    fn text(&self) -> Result<String, DecodeError> {
        match self.value {
            Value::Text(Some(s)) => Ok(s.clone()),
            Value::Int(Some(n)) => Ok(n.to_string()),
            Value::Float(Some(n)) => Ok(n.to_string()),
            Value::Boolean(Some(b)) => Ok(b.to_string()),
            Value::Blob(Some(b)) => String::from_utf8(b.clone()).map_err(|_| self.mismatch("text")),
            _ => Err(self.mismatch("text")),
        }
    }
}

macro_rules! integer {
    ($($method:ident => $visit:ident as $t:ty),* $(,)?) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
            let n = <$t>::try_from(self.int()?).map_err(|_| self.mismatch(stringify!($t)))?;
            visitor.$visit(n)
        }
    )*};
}

impl<'de> de::Deserializer<'de> for Cell<'_> {
    type Error = DecodeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.value {
            Value::Text(Some(s)) => visitor.visit_str(s),
            Value::Int(Some(n)) => visitor.visit_i64(*n),
            Value::Float(Some(n)) => visitor.visit_f64(*n),
            Value::Boolean(Some(b)) => visitor.visit_bool(*b),
            Value::Blob(Some(b)) => visitor.visit_bytes(b),
            _ => visitor.visit_none(),
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.value {
            Value::Boolean(Some(b)) => visitor.visit_bool(*b),
            Value::Int(Some(n)) => visitor.visit_bool(*n != 0),
            Value::Text(Some(s)) if s == "true" || s == "false" => visitor.visit_bool(s == "true"),
            _ => Err(self.mismatch("a boolean")),
        }
    }

    integer! {
        deserialize_i8 => visit_i8 as i8,
        deserialize_i16 => visit_i16 as i16,
        deserialize_i32 => visit_i32 as i32,
        deserialize_i64 => visit_i64 as i64,
        deserialize_u8 => visit_u8 as u8,
        deserialize_u16 => visit_u16 as u16,
        deserialize_u32 => visit_u32 as u32,
        deserialize_u64 => visit_u64 as u64,
    }

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_f32(self.float()? as f32)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_f64(self.float()?)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_string(self.text()?)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_string(self.text()?)
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_string(self.text()?)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.value {
            Value::Blob(Some(b)) => visitor.visit_bytes(b),
            Value::Text(Some(s)) => visitor.visit_bytes(s.as_bytes()),
            _ => Err(self.mismatch("bytes")),
        }
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        self.deserialize_bytes(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        if self.is_null() { visitor.visit_none() } else { visitor.visit_some(self) }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        visitor.visit_newtype_struct(self)
    }

    /// Unit variants stored as their names (`enforce`, `monitor`).
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        let text = self.text()?;
        let column = self.column;
        let name: de::value::StringDeserializer<DecodeError> = text.into_deserializer();
        visitor.visit_enum(name).map_err(|e| DecodeError(format!("column `{column}`: {e}")))
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        unit unit_struct seq tuple tuple_struct map struct identifier
    }
}

/// The field names `T` reads, as serde's derive declares them (renames applied, skipped
/// fields left out): the column list of a `SELECT` that fills `T`.
pub fn field_names<'de, T: de::Deserialize<'de>>() -> &'static [&'static str] {
    struct Capture<'c>(&'c mut &'static [&'static str]);

    impl<'de> de::Deserializer<'de> for Capture<'_> {
        type Error = DecodeError;
        fn deserialize_any<V: Visitor<'de>>(self, _v: V) -> Result<V::Value, DecodeError> {
            Err(DecodeError("not a struct".into()))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            _v: V,
        ) -> Result<V::Value, DecodeError> {
            *self.0 = fields;
            Err(DecodeError("captured".into()))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 u8 u16 u32 u64 f32 f64 char str string bytes byte_buf option
            unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
            ignored_any
        }
    }

    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(Capture(&mut fields));
    fields
}
