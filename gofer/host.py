"""Confined host access: the only module of sandboxfs that resolves host names.

Confinement rules (docs/protocol.md, "Confinement"):

* A `Node` is an O_PATH fd under an export root. Nodes are only ever made by
  resolving *one validated name* relative to a parent node's fd, with
  `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)` and
  `O_PATH | O_NOFOLLOW` (plain `openat(O_NOFOLLOW)` where openat2 is missing).
  A symlink is returned as itself, never followed; resolving a name *through*
  a symlink node fails with ENOTDIR because a symlink is not a directory.
* Names are validated first: empty, or containing `/` or NUL, is EINVAL; `.`
  and `..` are ENOENT for lookups and EINVAL for anything that creates,
  removes or renames (the client resolves dot-dot itself).
* Opening for I/O re-opens the *same inode* the O_PATH fd holds, through the
  `/proc/self/fd/N` magic link (which cannot be redirected: it names an open
  file, not a path), then checks st_dev/st_ino against the O_PATH fd. There is
  no path to swap between walk and open. Directories are opened as "."
  relative to their own fd.
* Metadata changes that need a real fd (chmod, chown, utimes, xattrs, link
  sources) go through the same magic link.
* A read-only export answers EROFS to every mutation before touching anything.
* Device nodes, fifos and sockets are never opened (EPERM) and char/block
  nodes never created (EPERM) unless the export has `allow_devices`.

Every function raises OSError with the errno to send back in Rlerror.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import stat
import time
from dataclasses import dataclass, field

from gofer.wire import QTDIR, QTFILE, QTSYMLINK, Qid, Stat

log = logging.getLogger(__name__)

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long

SYS_OPENAT2 = 437
SYS_LANDLOCK_CREATE_RULESET = 444
SYS_LANDLOCK_ADD_RULE = 445
SYS_LANDLOCK_RESTRICT_SELF = 446
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
_RESOLVE = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_SYMLINKS
_PATH_FLAGS = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC

#: open flags a client may pass to Tlopen/Tlcreate; everything else is dropped
_OPEN_MASK = (os.O_ACCMODE | os.O_TRUNC | os.O_APPEND | os.O_DIRECTORY | os.O_NOATIME
              | os.O_SYNC | os.O_DSYNC | os.O_NONBLOCK | os.O_EXCL | os.O_CREAT)
_MUTATING_OPEN = os.O_TRUNC | os.O_APPEND | os.O_CREAT
XATTR_CREATE = 1
XATTR_REPLACE = 2
NO_ID = 0xFFFFFFFF


def _raise_errno() -> None:
    e = ctypes.get_errno()
    raise OSError(e, os.strerror(e))


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64),
                ("resolve", ctypes.c_uint64)]


_have_openat2 = True


def open_beneath(dirfd: int, name: bytes) -> int:
    """An O_PATH fd for `name` (one validated component) in `dirfd`, never following it."""
    global _have_openat2
    if _have_openat2:
        how = _OpenHow(_PATH_FLAGS, 0, _RESOLVE)
        fd = _libc.syscall(SYS_OPENAT2, ctypes.c_int(dirfd), ctypes.c_char_p(name),
                           ctypes.byref(how), ctypes.c_size_t(ctypes.sizeof(how)))
        if fd >= 0:
            return int(fd)
        if ctypes.get_errno() != errno.ENOSYS:
            _raise_errno()
        _have_openat2 = False
        log.warning("openat2 unavailable; falling back to openat(O_NOFOLLOW) per component")
    return os.open(name, _PATH_FLAGS, dir_fd=dirfd)


def check_name(name: bytes, *, lookup: bool = False) -> None:
    """Refuse names that are not exactly one directory entry.

    `.` and `..` are ENOENT for lookups (the served namespace has no dot
    entries to walk to) and EINVAL for creation, removal and rename.
    """
    if not name or b"/" in name or b"\0" in name:
        raise OSError(errno.EINVAL, f"invalid name {name!r}")
    if name in (b".", b".."):
        raise OSError(errno.ENOENT if lookup else errno.EINVAL, f"invalid name {name!r}")


def _magic(fd: int) -> str:
    """The procfs magic link naming exactly the open file `fd` (not a path)."""
    return f"/proc/self/fd/{fd}"


def qid_of(st: os.stat_result) -> Qid:
    """qid.path is st_ino (as diod), so clients can show host inode numbers unchanged."""
    if stat.S_ISDIR(st.st_mode):
        return Qid(QTDIR, 0, st.st_ino)
    if stat.S_ISLNK(st.st_mode):
        return Qid(QTSYMLINK, 0, st.st_ino)
    return Qid(QTFILE, (st.st_mtime_ns ^ st.st_size) & 0xFFFFFFFF, st.st_ino)


def stat_of(st: os.stat_result) -> Stat:
    """The wire attribute record of a host stat result."""
    return Stat(qid_of(st), st.st_mode, st.st_uid, st.st_gid, st.st_nlink, st.st_rdev,
                st.st_size, st.st_blksize, st.st_blocks, st.st_atime_ns, st.st_mtime_ns,
                st.st_ctime_ns, st.st_dev)


class Node:
    """An O_PATH fd under an export root, shared by the fids that walked to it.

    `parent` and `name` are where the node was found; only the legacy
    Tremove/Trename need them, and they are re-verified (dev/ino) before use.
    Reference-counted: a fid holds one reference, a child holds one on its
    parent; the fd is closed when the last reference goes.
    """

    __slots__ = ("fd", "export", "parent", "name", "refs")

    def __init__(self, fd: int, export: Export, parent: Node | None, name: bytes) -> None:
        self.fd = fd
        self.export = export
        self.parent = parent
        self.name = name
        self.refs = 1
        if parent is not None:
            parent.refs += 1

    def incref(self) -> Node:
        self.refs += 1
        return self

    def release(self) -> None:
        node: Node | None = self
        while node is not None:
            node.refs -= 1
            if node.refs > 0:
                return
            os.close(node.fd)
            node.fd = -1
            node = node.parent

    def lstat(self) -> os.stat_result:
        return os.stat(self.fd)


@dataclass(frozen=True, slots=True)
class DirEntry:
    """One entry of a directory snapshot (see `Export.list_dir`)."""

    name: bytes
    ino: int
    dtype: int


_DT = {stat.S_IFDIR: 4, stat.S_IFREG: 8, stat.S_IFLNK: 10, stat.S_IFCHR: 2,
       stat.S_IFBLK: 6, stat.S_IFIFO: 1, stat.S_IFSOCK: 12}


def dtype_of(mode: int) -> int:
    """DT_* of a st_mode."""
    return _DT.get(stat.S_IFMT(mode), 0)


def qid_of_dtype(dtype: int, ino: int) -> Qid:
    """A qid from a dirent's d_type and d_ino, without a stat."""
    return Qid(QTDIR if dtype == 4 else QTSYMLINK if dtype == 10 else QTFILE, 0, ino)


class _Statfs(ctypes.Structure):
    _fields_ = [("f_type", ctypes.c_long), ("f_bsize", ctypes.c_long),
                ("f_blocks", ctypes.c_uint64), ("f_bfree", ctypes.c_uint64),
                ("f_bavail", ctypes.c_uint64), ("f_files", ctypes.c_uint64),
                ("f_ffree", ctypes.c_uint64), ("f_fsid", ctypes.c_int * 2),
                ("f_namelen", ctypes.c_long), ("f_frsize", ctypes.c_long),
                ("f_flags", ctypes.c_long), ("f_spare", ctypes.c_long * 4)]


@dataclass(frozen=True, slots=True)
class FsStat:
    """fstatfs(2) of a node's filesystem, as Rstatfs carries it."""

    type: int
    bsize: int
    blocks: int
    bfree: int
    bavail: int
    files: int
    ffree: int
    fsid: int
    namelen: int


@dataclass
class Export:
    """One served host tree: its root fd and the rules every operation obeys."""

    path: str
    readonly: bool = False
    allow_devices: bool = False
    allow_whiteouts: bool = False  # an overlay upper: 0/0 character devices only
    root_fd: int = field(default=-1, repr=False)

    def __post_init__(self) -> None:
        if self.root_fd < 0:
            # A root may be a single file (a file bind mount): no O_DIRECTORY.
            self.root_fd = os.open(self.path, os.O_PATH | os.O_CLOEXEC)

    def close(self) -> None:
        if self.root_fd >= 0:
            os.close(self.root_fd)
            self.root_fd = -1

    # -- resolution ----------------------------------------------------------

    def root(self) -> Node:
        """A new node for the export root (its own fd, so clients may release it)."""
        return Node(os.dup(self.root_fd), self, None, b"")

    def walk(self, parent: Node, name: bytes) -> Node:
        """The child `name` of `parent`: one component, never through or along a symlink."""
        check_name(name, lookup=True)
        return Node(open_beneath(parent.fd, name), self, parent, name)

    # -- guards ---------------------------------------------------------------

    def _writable(self) -> None:
        if self.readonly:
            raise OSError(errno.EROFS, "read-only export")

    def _same(self, *nodes: Node) -> None:
        for n in nodes:
            if n.export is not self:
                raise OSError(errno.EXDEV, "nodes of different exports")

    @staticmethod
    def _owner(uid: int, gid: int) -> tuple[int, int]:
        return (-1 if uid == NO_ID else uid, -1 if gid == NO_ID else gid)

    @staticmethod
    def _new_owner(parent: Node, uid: int, gid: int) -> tuple[int, int]:
        """The owner of a new entry made for (uid, gid): in a set-group-ID
        directory its group is the directory's, as the kernel would make it
        for the client (the gofer creates as root, then hands it over)."""
        st = parent.lstat()
        if st.st_mode & stat.S_ISGID:
            gid = st.st_gid
        return Export._owner(uid, gid)

    @staticmethod
    def _restore_mode(fd_or_path: int | str, want: int, st: os.stat_result) -> None:
        """Give a new entry the permission bits the client asked for where the
        gofer's umask or the chown handing it over took some away (chown clears
        set-user-ID and set-group-ID); bits the kernel added (a set-group-ID
        directory's) stay."""
        missing = want & ~stat.S_IMODE(st.st_mode)
        if missing:
            os.chmod(fd_or_path, stat.S_IMODE(st.st_mode) | missing)

    # -- opening --------------------------------------------------------------

    def open(self, node: Node, flags: int) -> int:
        """A real fd for the very inode `node` holds, opened with the client's `flags`."""
        flags &= _OPEN_MASK & ~(os.O_CREAT | os.O_EXCL)
        if self.readonly and ((flags & os.O_ACCMODE) != os.O_RDONLY
                              or flags & _MUTATING_OPEN):
            raise OSError(errno.EROFS, "read-only export")
        st = node.lstat()
        kind = stat.S_IFMT(st.st_mode)
        if kind == stat.S_IFDIR:
            if flags & os.O_ACCMODE != os.O_RDONLY:
                raise OSError(errno.EISDIR, "directory opened for writing")
            return os.open(".", (flags | os.O_CLOEXEC) & ~os.O_NONBLOCK, dir_fd=node.fd)
        if kind == stat.S_IFLNK:
            raise OSError(errno.ELOOP, "a symlink is not opened")
        if flags & os.O_DIRECTORY:
            raise OSError(errno.ENOTDIR, "not a directory")
        if kind != stat.S_IFREG:
            if not self.allow_devices:
                raise OSError(errno.EPERM, "special files are not opened on this export")
            flags |= os.O_NONBLOCK  # a fifo must not block the server
        fd = os.open(_magic(node.fd), flags | os.O_CLOEXEC | os.O_NOCTTY)
        try:
            got = os.fstat(fd)
            if (got.st_dev, got.st_ino) != (st.st_dev, st.st_ino):
                raise OSError(errno.ESTALE, "reopened a different file")
        except BaseException:
            os.close(fd)
            raise
        return fd

    def create(self, parent: Node, name: bytes, flags: int, mode: int, uid: int,
               gid: int) -> tuple[Node, int]:
        """Create and open a regular file; returns its node and the open fd."""
        self._writable()
        check_name(name)
        flags = (flags & _OPEN_MASK) | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(name, flags, mode & 0o7777, dir_fd=parent.fd)
        try:
            node = self.walk(parent, name)
            try:
                a, b = os.fstat(fd), node.lstat()
                if (a.st_dev, a.st_ino) != (b.st_dev, b.st_ino):
                    raise OSError(errno.ESTALE, "created file was replaced")
                if os.geteuid() == 0:
                    os.fchown(fd, *self._new_owner(parent, uid, gid))
                self._restore_mode(fd, mode & 0o7777, os.fstat(fd))
            except BaseException:
                node.release()
                raise
        except BaseException:
            os.close(fd)
            raise
        return node, fd

    # -- metadata -------------------------------------------------------------

    def setattr(self, node: Node, *, mode: int | None = None, uid: int | None = None,
                gid: int | None = None, size: int | None = None,
                atime_ns: int | None = None, mtime_ns: int | None = None,
                atime_now: bool = False, mtime_now: bool = False) -> None:
        """Apply the requested changes in the order chown, chmod, truncate, utimes:
        a chown clears set-user-ID and set-group-ID, so a mode asked for with
        it comes after."""
        self._writable()
        path = _magic(node.fd)
        if uid is not None or gid is not None:
            os.chown(path, -1 if uid is None else uid, -1 if gid is None else gid)
        if mode is not None:
            os.chmod(path, mode & 0o7777)
        if size is not None:
            fd = self.open(node, os.O_WRONLY)
            try:
                os.ftruncate(fd, size)
            finally:
                os.close(fd)
        if atime_ns is not None or mtime_ns is not None or atime_now or mtime_now:
            now = time.time_ns()
            st = node.lstat()
            a = now if atime_now else st.st_atime_ns if atime_ns is None else atime_ns
            m = now if mtime_now else st.st_mtime_ns if mtime_ns is None else mtime_ns
            os.utime(path, ns=(a, m))

    def statfs(self, node: Node) -> FsStat:
        buf = _Statfs()
        if _libc.fstatfs(ctypes.c_int(node.fd), ctypes.byref(buf)) != 0:
            _raise_errno()
        fsid = (buf.f_fsid[0] & 0xFFFFFFFF) | ((buf.f_fsid[1] & 0xFFFFFFFF) << 32)
        return FsStat(buf.f_type & 0xFFFFFFFF, buf.f_bsize, buf.f_blocks, buf.f_bfree,
                      buf.f_bavail, buf.f_files, buf.f_ffree, fsid, buf.f_namelen)

    def readlink(self, node: Node) -> bytes:
        return os.readlink(b"", dir_fd=node.fd)

    # -- directory changes ----------------------------------------------------

    def _hand_over(self, parent: Node, name: bytes, mode: int, uid: int,
                   gid: int) -> os.stat_result:
        """Give a new entry its owner and asked-for mode; its stat after."""
        if os.geteuid() == 0:
            os.chown(name, *self._new_owner(parent, uid, gid), dir_fd=parent.fd,
                     follow_symlinks=False)
        st = self._entry_stat(parent, name)
        if not stat.S_ISLNK(st.st_mode) and mode & ~stat.S_IMODE(st.st_mode) & 0o7777:
            node = self.walk(parent, name)
            try:
                self._restore_mode(_magic(node.fd), mode & 0o7777, st)
            finally:
                node.release()
            st = self._entry_stat(parent, name)
        return st

    def _entry_stat(self, parent: Node, name: bytes) -> os.stat_result:
        return os.stat(name, dir_fd=parent.fd, follow_symlinks=False)

    def mkdir(self, parent: Node, name: bytes, mode: int, uid: int,
              gid: int) -> os.stat_result:
        self._writable()
        check_name(name)
        os.mkdir(name, mode & 0o7777, dir_fd=parent.fd)
        return self._hand_over(parent, name, mode, uid, gid)

    def symlink(self, parent: Node, name: bytes, target: bytes, uid: int,
                gid: int) -> os.stat_result:
        """Store `target` verbatim: the server never follows it, so any target is safe."""
        self._writable()
        check_name(name)
        if not target or b"\0" in target:
            raise OSError(errno.EINVAL, "invalid symlink target")
        os.symlink(target, name, dir_fd=parent.fd)
        return self._hand_over(parent, name, 0, uid, gid)

    def mknod(self, parent: Node, name: bytes, mode: int, major: int, minor: int,
              uid: int, gid: int) -> os.stat_result:
        self._writable()
        check_name(name)
        kind = stat.S_IFMT(mode)
        whiteout = kind == stat.S_IFCHR and major == 0 and minor == 0 and self.allow_whiteouts
        if kind in (stat.S_IFCHR, stat.S_IFBLK) and not (self.allow_devices or whiteout):
            raise OSError(errno.EPERM, "device nodes are not created on this export")
        if kind not in (stat.S_IFCHR, stat.S_IFBLK, stat.S_IFIFO, stat.S_IFSOCK, stat.S_IFREG):
            raise OSError(errno.EINVAL, "bad mknod type")
        os.mknod(name, mode, os.makedev(major, minor), dir_fd=parent.fd)
        return self._hand_over(parent, name, mode, uid, gid)

    def link(self, parent: Node, target: Node, name: bytes) -> None:
        """Hard-link the inode `target` holds (not a path to it) as `name` in `parent`."""
        self._writable()
        self._same(parent, target)
        check_name(name)
        os.link(_magic(target.fd), name, dst_dir_fd=parent.fd, follow_symlinks=True)

    def rename(self, olddir: Node, oldname: bytes, newdir: Node, newname: bytes) -> None:
        self._writable()
        self._same(olddir, newdir)
        check_name(oldname)
        check_name(newname)
        os.rename(oldname, newname, src_dir_fd=olddir.fd, dst_dir_fd=newdir.fd)

    def unlink(self, parent: Node, name: bytes, flags: int) -> None:
        self._writable()
        check_name(name)
        if flags & ~0x200:
            raise OSError(errno.EINVAL, "unknown unlinkat flags")
        if flags & 0x200:  # AT_REMOVEDIR
            os.rmdir(name, dir_fd=parent.fd)
        else:
            os.unlink(name, dir_fd=parent.fd)

    def _where(self, node: Node) -> tuple[Node, bytes]:
        """Parent and name of `node`, checked to still name the same inode."""
        if node.parent is None:
            raise OSError(errno.EBUSY, "the export root")
        st = node.lstat()
        now = self._entry_stat(node.parent, node.name)
        if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):
            raise OSError(errno.ESTALE, "node moved since it was walked")
        return node.parent, node.name

    def remove(self, node: Node) -> None:
        """Legacy Tremove: unlink the entry the node was walked through."""
        self._writable()
        parent, name = self._where(node)
        self.unlink(parent, name, 0x200 if stat.S_ISDIR(node.lstat().st_mode) else 0)

    def rename_node(self, node: Node, newdir: Node, newname: bytes) -> None:
        """Legacy Trename: move the entry the node was walked through."""
        self._writable()
        parent, name = self._where(node)
        self.rename(parent, name, newdir, newname)

    # -- directories ------------------------------------------------------------

    @staticmethod
    def list_dir(dirfd: int) -> list[DirEntry]:
        """A snapshot of the entries of the open directory `dirfd` (no dot entries)."""
        out = []
        with os.scandir(dirfd) as it:
            for e in it:
                if e.is_dir(follow_symlinks=False):
                    dt = 4
                elif e.is_symlink():
                    dt = 10
                elif e.is_file(follow_symlinks=False):
                    dt = 8
                else:
                    try:
                        dt = dtype_of(e.stat(follow_symlinks=False).st_mode)
                    except FileNotFoundError:
                        continue
                out.append(DirEntry(os.fsencode(e.name), e.inode(), dt))
        return out

    @staticmethod
    def stat_entry(dirfd: int, name: bytes) -> os.stat_result:
        return os.stat(name, dir_fd=dirfd, follow_symlinks=False)

    # -- xattrs ---------------------------------------------------------------

    def listxattr(self, node: Node) -> list[bytes]:
        return [os.fsencode(n) for n in os.listxattr(_magic(node.fd))]

    def getxattr(self, node: Node, name: bytes) -> bytes:
        return os.getxattr(_magic(node.fd), name)

    def setxattr(self, node: Node, name: bytes, value: bytes, flags: int) -> None:
        self._writable()
        os.setxattr(_magic(node.fd), name, value, flags & (XATTR_CREATE | XATTR_REPLACE))

    def removexattr(self, node: Node, name: bytes) -> None:
        self._writable()
        os.removexattr(_magic(node.fd), name)


# ---------------------------------------------------------------------------
# Landlock

_LL_EXECUTE = 1 << 0
_LL_WRITE_FILE = 1 << 1
_LL_READ_FILE = 1 << 2
_LL_READ_DIR = 1 << 3
_LL_ABI_RIGHTS = {1: (1 << 13) - 1, 2: (1 << 14) - 1, 3: (1 << 15) - 1, 4: (1 << 15) - 1,
                  5: (1 << 16) - 1}
_LL_FILE_RIGHTS = _LL_EXECUTE | _LL_WRITE_FILE | _LL_READ_FILE | (1 << 14) | (1 << 15)
_LL_READ = _LL_EXECUTE | _LL_READ_FILE | _LL_READ_DIR


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def landlock_abi() -> int:
    """The kernel's landlock ABI version, 0 if landlock is unavailable."""
    v = _libc.syscall(SYS_LANDLOCK_CREATE_RULESET, None, ctypes.c_size_t(0),
                      ctypes.c_uint32(1))  # LANDLOCK_CREATE_RULESET_VERSION
    return max(int(v), 0)


def restrict_to_exports(exports: list[Export]) -> bool:
    """Confine this process's filesystem access to the export roots (landlock).

    Read-only roots get read rights only. Everything else on the host becomes
    unreachable by path, so the process must have imported all it needs
    before. Returns False (after logging a warning) if landlock is missing.
    """
    abi = landlock_abi()
    if abi <= 0:
        log.warning("landlock unavailable: the gofer is confined by fd-relative "
                    "resolution only")
        return False
    handled = _LL_ABI_RIGHTS.get(abi, _LL_ABI_RIGHTS[5])
    attr = ctypes.c_uint64(handled)
    rfd = _libc.syscall(SYS_LANDLOCK_CREATE_RULESET, ctypes.byref(attr),
                        ctypes.c_size_t(8), ctypes.c_uint32(0))
    if rfd < 0:
        log.warning("landlock_create_ruleset failed: %s", os.strerror(ctypes.get_errno()))
        return False
    try:
        for ex in exports:
            fd = os.open(ex.path, os.O_PATH | os.O_CLOEXEC)
            try:
                rights = (_LL_READ if ex.readonly else handled) & handled
                if not stat.S_ISDIR(os.fstat(fd).st_mode):
                    rights &= _LL_FILE_RIGHTS  # directory rights on a file are EINVAL
                rule = _PathBeneath(rights, fd)
                if _libc.syscall(SYS_LANDLOCK_ADD_RULE, ctypes.c_int(rfd), ctypes.c_int(1),
                                 ctypes.byref(rule), ctypes.c_uint32(0)) != 0:
                    _raise_errno()
            finally:
                os.close(fd)
        if _libc.prctl(ctypes.c_int(38), ctypes.c_ulong(1), ctypes.c_ulong(0),
                       ctypes.c_ulong(0), ctypes.c_ulong(0)) != 0:  # PR_SET_NO_NEW_PRIVS
            _raise_errno()
        if _libc.syscall(SYS_LANDLOCK_RESTRICT_SELF, ctypes.c_int(rfd),
                         ctypes.c_uint32(0)) != 0:
            _raise_errno()
    finally:
        os.close(rfd)
    log.info("landlock ABI %d: confined to %s", abi, ", ".join(e.path for e in exports))
    return True
