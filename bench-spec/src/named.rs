//! `named!`: an enum whose values are written as words (in boot options and result
//! lines), with its list of values, its names and their parsing, one arm per value.

/// Defines `enum $name { $variant, ... }` with `ALL` (every value, in order), `LIST`
/// (their names, comma-separated), `name()`, `parse()` (exactly the names, nothing
/// else), `Display` and `FromStr`.
macro_rules! named {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $(#[$fmeta:meta])* $first:ident = $fword:literal,
            $( $(#[$vmeta:meta])* $variant:ident = $word:literal, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $(#[$fmeta])* $first,
            $( $(#[$vmeta])* $variant, )*
        }

        impl $name {
            /// Every value, in the order the benchmark runs or lists them.
            pub const ALL: &'static [$name] = &[$name::$first $(, $name::$variant)*];

            /// The names of [`Self::ALL`], comma-separated (as option values list them).
            pub const LIST: &'static str = concat!($fword $(, ",", $word)*);

            /// The word for this value.
            pub const fn name(self) -> &'static str {
                match self {
                    $name::$first => $fword,
                    $($name::$variant => $word,)*
                }
            }

            /// The value named `word` (exactly, case included).
            pub fn parse(word: &str) -> Option<Self> {
                match word {
                    $fword => Some($name::$first),
                    $($word => Some($name::$variant),)*
                    _ => None,
                }
            }
        }

        impl core::fmt::Display for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str(self.name())
            }
        }

        impl core::str::FromStr for $name {
            type Err = ();
            fn from_str(word: &str) -> Result<Self, ()> {
                Self::parse(word).ok_or(())
            }
        }
    };
}
