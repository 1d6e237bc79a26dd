//! Enums whose values are words: on the command line (`-e peerFail`), in `$CSR_HA_DIR/cloud`,
//! in `node_file`. [`words!`] gives each its spelling (`as_str`, `Display`), its parser
//! (`FromStr`, refusing with the flag and the accepted words, as every bad input is refused)
//! and the list of its values, from one table.

/// ```text
/// words! {
///     pub enum EventKind ("-e", "peerFail, revert or verify") {
///         PeerFail = "peerFail",
///         ...
///     }
/// }
/// ```
macro_rules! words {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident ($flag:literal, $accepted:literal) {
            $( $(#[$vmeta:meta])* $variant:ident = $word:literal, )+
        }
    ) => {
        $(#[$meta])*
        $vis enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            /// The accepted words, for help and error messages.
            pub const ACCEPTED: &'static str = $accepted;

            pub fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $word, )+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::node::InvalidValue;
            fn from_str(s: &str) -> Result<$name, Self::Err> {
                let s = s.trim();
                $name::ALL
                    .iter()
                    .copied()
                    .find(|v| v.as_str() == s)
                    .ok_or_else(|| $crate::node::InvalidValue::new($flag, s, $accepted))
            }
        }
    };
}
