"""The release sub-commands of ``python -m validator`` (listed in
:data:`validator.cli.EXTRA_COMMANDS`): ``release``, ``keygen`` and ``verify``. Light at import
time: argparse and the config class only; the work is imported when a command runs."""

from __future__ import annotations

import argparse
from pathlib import Path

from common.config import add_arguments, resolve
from validator.release.config import ENV_PREFIX, ReleaseConfig

RELEASE_EPILOG = f"""\
examples:
  python -m validator keygen --out keys/release        # keys/release (0600) + keys/release.pub
  python -m validator release --report out/demo/report --synthetic out/demo/synthetic \\
      --model-dir out/demo/model --real data/isic-demo --key keys/release --out releases
  python -m validator verify releases/NAME --public-key keys/release.pub

exit codes: 0 bundle written, 2 refused (the message says why: FAIL verdict without
--allow-fail, random-weight features without --allow-random-weights, a report made for other
images or another model, a training set that is not the model's, an unknown licence, ...).
Every option also reads {ENV_PREFIX}<OPTION> from the environment.
"""

VERIFY_EPILOG = """\
A recipient runs verify first, then reads MODEL_CARD.md and ATTRIBUTION.md.
exit codes: 0 every check holds, 1 a problem (each named), 2 unreadable input.
"""


def add_parsers(sub) -> None:
    text = "make a signed, attributed release bundle of a validated synthetic set"
    p = sub.add_parser(
        "release",
        help=text,
        description=text,
        epilog=RELEASE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(p, ReleaseConfig)
    p.set_defaults(run=_release)
    text = "make an Ed25519 key pair for signing release bundles"
    p = sub.add_parser("keygen", help=text, description=text)
    p.add_argument(
        "--out",
        type=Path,
        required=True,
        metavar="KEY",
        help="private key file to create (mode 0600); the public key goes to KEY.pub",
    )
    p.set_defaults(run=_keygen)
    text = "check a release bundle: signature, every file's hash, no file added or removed"
    p = sub.add_parser(
        "verify",
        help=text,
        description=text,
        epilog=VERIFY_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("bundle", type=Path, metavar="BUNDLE", help="bundle folder or its .tar.gz")
    p.add_argument(
        "--public-key",
        type=Path,
        metavar="KEY.pub",
        help="the releaser's public key (from them, not from the bundle): proves who signed",
    )
    p.set_defaults(run=_verify)


def _release(args: argparse.Namespace) -> int:
    from validator.release.bundle import build

    config = resolve(ReleaseConfig, args, prefix=ENV_PREFIX)
    built = build(config)
    print(f"bundle: {built.folder}")
    if built.tar:
        print(f"archive: {built.tar}")
    print(f"images: {built.images}; terms: {built.licence}; signed by key {built.key_id}")
    if built.stamps:
        print(f"STAMPED: {', '.join(built.stamps)} (released with --allow-* despite the gate)")
    return 0


def _keygen(args: argparse.Namespace) -> int:
    from validator.release.signing import keygen

    private, public, kid = keygen(args.out)
    print(f"private key: {private} (mode 0600: keep it secret, never put it in a bundle)")
    print(f"public key:  {public} (give it to recipients: verify --public-key {public})")
    print(f"key id:      {kid}")
    return 0


def _verify(args: argparse.Namespace) -> int:
    from validator.release.verify import verify

    result = verify(args.bundle, args.public_key)
    for problem in result.problems:
        print(f"PROBLEM: {problem}")
    if not result.ok:
        print(f"verify: {args.bundle}: {len(result.problems)} problem(s)")
        return 1
    m = result.manifest
    print(f"OK: {m['name']}: {result.files} files match manifest.json")
    if args.public_key:
        print(f"signature: valid, by the given public key {result.key_id}")
    else:
        print(
            f"signature: valid for the key inside the bundle ({result.key_id}); pass "
            "--public-key with the releaser's key to check who signed"
        )
    terms = m.get("terms") or {}
    print(
        f"verdict: {(m.get('validation') or {}).get('verdict')}; terms: {terms.get('licence')}"
        f"{'' if terms.get('commercial_use', True) else ' (non-commercial use only)'}"
    )
    if m.get("stamps"):
        print(f"STAMPED: {', '.join(m['stamps'])}")
    print("next: read MODEL_CARD.md and ATTRIBUTION.md")
    return 0
