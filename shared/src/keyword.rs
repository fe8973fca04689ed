//! Closed sets of keywords a config field takes ("bearer", "header", "client_secret_basic", ...), kept as
//! enums once validated so nothing compares strings after a snapshot is built. On the wire and in stored
//! configs they stay the same strings.

/// A field value from a fixed list of keywords.
pub trait Keyword: Sized + Copy + PartialEq + 'static {
    /// Every keyword, in the order error messages list them.
    const ALL: &'static [Self];
    /// The keyword as written in configs.
    fn as_str(self) -> &'static str;
    /// The keyword spelled `s`, if there is one.
    fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|k| k.as_str() == s)
    }
    /// Every keyword as written, for error messages and schemas.
    fn names() -> Vec<&'static str> {
        Self::ALL.iter().map(|k| k.as_str()).collect()
    }
}

/// Declares an enum of keywords: `keywords! { /// doc \n pub enum Name { Variant = "spelling", ... } }`.
/// The enum serialises as its spelling.
#[macro_export]
macro_rules! keywords {
    ($(#[$meta:meta])* pub enum $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl $crate::keyword::Keyword for $name {
            const ALL: &'static [Self] = &[$($name::$variant),+];
            fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str($crate::keyword::Keyword::as_str(*self))
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str($crate::keyword::Keyword::as_str(*self))
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
                <$name as $crate::keyword::Keyword>::parse(&s).ok_or_else(|| {
                    serde::de::Error::custom(format!(
                        "expected one of: {}",
                        <$name as $crate::keyword::Keyword>::names().join(", ")
                    ))
                })
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::Keyword;

    keywords! {
        /// Test keywords.
        pub enum Colour { Red = "red", DarkBlue = "dark_blue" }
    }

    #[test]
    fn keywords_round_trip_through_their_spelling() {
        assert_eq!(Colour::parse("dark_blue"), Some(Colour::DarkBlue));
        assert_eq!(Colour::parse("DarkBlue"), None);
        assert_eq!(Colour::names(), vec!["red", "dark_blue"]);
        assert_eq!(serde_json::to_string(&Colour::Red).unwrap(), "\"red\"");
        let back: Vec<Colour> = serde_json::from_str("[\"dark_blue\",\"red\"]").unwrap();
        assert_eq!(back, vec![Colour::DarkBlue, Colour::Red]);
        let err = serde_json::from_str::<Colour>("\"green\"").unwrap_err();
        assert!(err.to_string().contains("expected one of: red, dark_blue"));
    }
}
