#!/usr/bin/env python3
"""Fails when an ELF file in the router packages needs a GLIBC symbol version above the floor.

Guestshell on IOS XE 16.x is CentOS 7 (glibc 2.17): a binary that needs GLIBC_2.18 or later does
not start there. Reads each ELF file's version-needed section (what `objdump -T` shows as
GLIBC_x.y), so it needs no binutils.

    check_glibc.py [--max 2.17] PACKAGE_OR_FILE...    (wheels, .tar.gz tarballs, ELF files)
"""
import io
import struct
import sys
import tarfile
import zipfile

SHT_GNU_VERNEED = 0x6FFFFFFE


def needed_versions(data):
    """The symbol versions (GLIBC_2.17, ...) an ELF64 little-endian file needs; None if not ELF."""
    if data[:4] != b"\x7fELF":
        return None
    if data[4] != 2 or data[5] != 1:
        raise ValueError("not a 64-bit little-endian ELF file")
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
    sections = []
    for i in range(shnum):
        off = shoff + i * shentsize
        _name, kind, _flags, _addr, offset, size, link, info = struct.unpack_from(
            "<IIQQQQII", data, off
        )
        sections.append((kind, offset, size, link, info))
    versions = set()
    for kind, offset, _size, link, count in sections:
        if kind != SHT_GNU_VERNEED:
            continue
        strtab = sections[link][1]
        entry = offset
        for _ in range(count):
            _ver, _cnt, _file, aux, nxt = struct.unpack_from("<HHIII", data, entry)
            a = entry + aux
            for _ in range(_cnt):
                _hash, _flags, _other, name, anext = struct.unpack_from("<IHHII", data, a)
                start = strtab + name
                versions.add(data[start : data.index(b"\0", start)].decode())
                if anext == 0:
                    break
                a += anext
            if nxt == 0:
                break
            entry += nxt
    return versions


def members(path):
    """(name, bytes) of every regular file in a wheel, a tarball, or the file itself."""
    if path.endswith(".whl"):
        with zipfile.ZipFile(path) as z:
            for info in z.infolist():
                if not info.is_dir():
                    yield info.filename, z.read(info)
    elif path.endswith((".tar.gz", ".tgz")):
        with tarfile.open(path) as t:
            for m in t.getmembers():
                if m.isfile():
                    yield m.name, t.extractfile(m).read()
    else:
        with open(path, "rb") as f:
            yield path, f.read()


def version_key(v):
    return tuple(int(x) for x in v.split("."))


def main(argv):
    floor = "2.17"
    if len(argv) >= 2 and argv[0] == "--max":
        floor, argv = argv[1], argv[2:]
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    bad = 0
    for path in argv:
        elves = 0
        for name, data in members(path):
            versions = needed_versions(data)
            if versions is None:
                continue
            elves += 1
            glibc = sorted(
                (v[len("GLIBC_"):] for v in versions if v.startswith("GLIBC_2")),
                key=version_key,
            )
            newest = glibc[-1] if glibc else "none"
            too_new = [v for v in glibc if version_key(v) > version_key(floor)]
            if too_new:
                bad += 1
                print(f"400: {path}: {name} needs GLIBC_{', GLIBC_'.join(too_new)} (above {floor})")
            else:
                print(f"ok: {path}: {name} needs at most GLIBC_{newest}")
        if elves == 0:
            bad += 1
            print(f"400: {path}: no ELF file in it")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
