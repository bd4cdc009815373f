//! The `after_long_help` of the commands on bundle files and keys: inspect, verify, extract,
//! strip-stub, keygen, and of completions (layout: [`super`]).

pub(crate) const INSPECT: &str = concat!(
    "EXAMPLES
  capsa inspect org.python.Python3-3.11.capsa
      The manifest, layers, permissions and signature state.
  capsa inspect --files org.python.Python3-3.11.capsa
      Every file of every layer too.
  capsa inspect --report --json app.capsa
      Why each file is in the bundle, as JSON.

",
    exit_usual!(),
    "
ENVIRONMENT
  None: capsa inspect reads only the bundle.

FILES
  BUNDLE
      The bundle file, read only; a self-executable one too.

SEE ALSO
capsa-verify(1), capsa-pack(1), capsa.toml(5)
"
);

pub(crate) const VERIFY: &str = "EXAMPLES
  capsa verify org.python.Python3-3.11.capsa
      Check every byte; exit 1 naming the first damaged part.
  capsa verify --key publisher.pub app.capsa
      Also require a valid signature by that key (and, on a self-executable bundle, its
      stub's note).

EXIT STATUS
  0
      The bundle is sound (and signed by --key, when given).
  1
      It is damaged, unsigned by --key, or cannot be read: the message names the first
      part that failed.
  2
      A usage error.

ENVIRONMENT
  None: capsa verify reads only the bundle and the key.

FILES
  BUNDLE
      The bundle file, read only.
  PUBFILE
      A public key written by capsa keygen (NAME.pub).

SEE ALSO
capsa-inspect(1), capsa-keygen(1)
";

pub(crate) const EXTRACT: &str = concat!(
    "EXAMPLES
  capsa extract org.python.Python3-3.11.capsa python-tree
      Write the bundle's file tree into python-tree (created).

",
    exit_usual!(),
    "
ENVIRONMENT
  None: capsa extract reads only the bundle.

FILES
  DIR
      Made from a private staging folder beside it, renamed into place when complete.

SEE ALSO
capsa-verify(1), capsa-inspect(1)
"
);

pub(crate) const STRIP_STUB: &str = concat!(
    "EXAMPLES
  capsa strip-stub app.capsa -o plain.capsa
      The plain bundle of a self-executable one, byte for byte.
  capsa strip-stub app.capsa -o app.capsa
      Strip it in place.

",
    exit_usual!(),
    "
ENVIRONMENT
  None: capsa strip-stub reads only the bundle.

FILES
  OUTPUT
      Written to a temporary file beside it, then renamed into place (mode 0644).

SEE ALSO
capsa-pack(1), capsa-verify(1)
"
);

pub(crate) const KEYGEN: &str = concat!(
    "EXAMPLES
  capsa keygen publisher
      Write publisher.key and publisher.pub in the current directory.
  capsa pack --sign publisher.key -o app.capsa app/capsa.toml
      Sign a bundle with the secret key; give publisher.pub to those who check it.

",
    exit_usual!(),
    "
ENVIRONMENT
  None: capsa keygen reads no variable.

FILES
  NAME.key
      The secret key, mode 0600: keep it private. Neither file is overwritten.
  NAME.pub
      The public key, for capsa verify --key, capsa install --key and capsa remote add.

SEE ALSO
capsa-pack(1), capsa-verify(1), capsa-repo(1)
"
);

pub(crate) const COMPLETIONS: &str = concat!(
    "EXAMPLES
  capsa completions bash > ~/.local/share/bash-completion/completions/capsa
      Bash completion for your user (create the folder first).
  capsa completions zsh > ~/.zfunc/_capsa
      Zsh, with fpath+=(~/.zfunc) in ~/.zshrc.
  capsa completions fish > ~/.config/fish/completions/capsa.fish
      Fish.

",
    exit_usual!(),
    "
ENVIRONMENT
  None: the script is the same everywhere.

FILES
  ~/.local/share/bash-completion/completions/capsa
      Where bash looks for capsa's completion.
  ~/.config/fish/completions/capsa.fish
      Where fish looks for it.

SEE ALSO
capsa(1)
"
);
