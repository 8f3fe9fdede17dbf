#!/usr/bin/env python3
"""Checks that raw C library calls (open, mount, fchown, pipe, posix_spawn...)
appear only in Sources/Platform, the one home of syscalls: there each call
retries EINTR, reports `Errno` and is written once.

A call is a known libc function name followed by "(" that is not a method
(`x.write(`), not a declaration (`func mount(`), not a struct's empty
initialiser (`stat()`), and not the name of a function the same module
declares itself (Ledger's `write("...")`). `Glibc.NAME(` and `import Glibc` are
always raw. Comments and string literals are ignored.

Usage: scripts/lib/check-syscalls.py [--list]
  --list prints every raw call found, allowed ones included.
"""
import os
import re
import sys

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
HOME = "Sources/Platform/"

# Files whose raw calls are still to move into Platform: the spool's (its lock
# waits, the keyring's file handling), left while the spool's speed work
# (issue 16 item 9) changes those files. Remove a line once its file is clean
# (the check fails on an entry that no longer needs to be here).
STILL_TO_MOVE = {
    "Sources/Spool/Spool.swift",
    "Sources/Spool/SpoolKeyring.swift",
}

LIBC = """
open openat openat2 creat close close_range read pread pwrite write readv writev lseek
fsync fdatasync sync syncfs ftruncate truncate fallocate posix_fadvise posix_fallocate
fchown fchownat chown lchown fchmod fchmodat chmod umask mkdir mkdirat rmdir mknod
unlink unlinkat rename renameat renameat2 link linkat symlink symlinkat readlink readlinkat
stat lstat fstat fstatat statx statvfs fstatvfs access faccessat realpath utimensat futimens
opendir fdopendir readdir closedir rewinddir scandir
mount umount umount2 pipe pipe2 poll ppoll select epoll_create1 epoll_ctl epoll_wait eventfd
flock fcntl ioctl dup dup2 dup3 mmap munmap madvise mlock munlock
geteuid getuid getegid getgid setuid setgid seteuid setegid getpwnam getpwuid getgrnam getgrgid
kill waitpid wait fork vfork execve execvp posix_spawn posix_spawnp
posix_spawn_file_actions_init posix_spawn_file_actions_adddup2 posix_spawn_file_actions_addopen
isatty signal sigaction sigprocmask usleep nanosleep prctl chdir fchdir
socket socketpair connect bind listen accept sendmsg recvmsg getrandom memfd_create
strerror sysconf getpid getppid
""".split()

CALL_RE = re.compile(r"(?<![\w.$`])(?:Glibc\.)?(" + "|".join(sorted(set(LIBC), key=len, reverse=True)) + r")\s*\(")
GLIBC_RE = re.compile(r"\bGlibc\.(\w+)\s*\(")
IMPORT_RE = re.compile(r"^\s*(?:@\w+\s+)?(?:public\s+|internal\s+)?import\s+Glibc\b", re.M)
DECL_RE = re.compile(r"\bfunc\s+(\w+)\s*[(<]")


def strip(text):
    """The source with comments and string literals blanked (lines kept)."""
    out, i, n = [], 0, len(text)
    while i < n:
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append("\n" * text.count("\n", i, j))
            i = j
        elif text.startswith('"""', i):
            j = text.find('"""', i + 3)
            j = n if j < 0 else j + 3
            out.append('""' + "\n" * text.count("\n", i, j))
            i = j
        elif text[i] == '"':
            # A one-line literal: its text is blanked, its interpolations are code.
            out.append('"')
            j = i + 1
            while j < n and text[j] not in '"\n':
                if text.startswith("\\(", j):
                    depth, k = 0, j + 1
                    while k < n:
                        depth += {"(": 1, ")": -1}.get(text[k], 0)
                        if depth == 0:
                            break
                        k += 1
                    out.append(" " + strip(text[j + 1:k + 1]))
                    j = k + 1
                else:
                    j += 2 if text[j] == "\\" else 1
            out.append('"')
            i = j + 1
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def swift_files(folder):
    for directory, _, files in os.walk(os.path.join(ROOT, folder)):
        for file in sorted(files):
            if file.endswith(".swift"):
                path = os.path.join(directory, file)
                yield os.path.relpath(path, ROOT), path


def raw_calls(module):
    """(file, line, call) for each raw libc call in one module's folder."""
    sources = {rel: strip(open(path, encoding="utf-8").read()) for rel, path in swift_files(module)}
    declared = set()
    for text in sources.values():
        declared |= set(DECL_RE.findall(text))
    for rel, text in sources.items():
        for match in IMPORT_RE.finditer(text):
            yield rel, text.count("\n", 0, match.start()) + 1, "import Glibc"
        for match in CALL_RE.finditer(text):
            name = match.group(1)
            qualified = match.group(0).startswith("Glibc.")
            before = text[max(0, match.start() - 12):match.start()]
            if not qualified:
                # `try write(...)`: a Swift function that throws; a libc call returns -1 instead.
                if re.search(r"\b(func|case|init|try[?!]?)\s+$", before) or name in declared:
                    continue
                # `stat()`, `statvfs()`: the C struct's empty initialiser, no call.
                if re.match(r"\s*\(\s*\)", text[match.end() - 1:match.end() + 3]) and name in ("stat", "statvfs"):
                    continue
            yield rel, text.count("\n", 0, match.start()) + 1, name + "("


def main():
    listing = "--list" in sys.argv[1:]
    if any(argument != "--list" for argument in sys.argv[1:]):
        raise SystemExit(__doc__)
    found = []
    for module in sorted(os.listdir(os.path.join(ROOT, "Sources"))):
        folder = os.path.join("Sources", module)
        if os.path.isdir(os.path.join(ROOT, folder)) and not (folder + "/").startswith(HOME):
            found += list(raw_calls(folder))
    failed = False
    seen = set()
    for rel, line, call in found:
        seen.add(rel)
        allowed = rel in STILL_TO_MOVE
        if listing or not allowed:
            print(f"{'allowed (still to move)' if allowed else 'error'}: {rel}:{line}: raw {call} outside Sources/Platform", file=sys.stderr)
        failed = failed or not allowed
    for rel in sorted(STILL_TO_MOVE - seen):
        print(f"error: scripts/lib/check-syscalls.py: {rel} has no raw call left: remove it from STILL_TO_MOVE", file=sys.stderr)
        failed = True
    if failed:
        print("call the operating system through Sources/Platform (Syscall, FolderSafety...), not libc directly", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
