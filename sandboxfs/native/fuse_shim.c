/*
 * Listings the kernel may keep: FOPEN_CACHE_DIR for pyfuse3's opendir.
 *
 * pyfuse3 3.5's opendir handler returns a bare file handle, so a filesystem
 * cannot ask the kernel to cache a directory's listing (FOPEN_CACHE_DIR,
 * with FOPEN_KEEP_CACHE so that the next open keeps it). This library,
 * loaded with RTLD_GLOBAL before pyfuse3 (sandboxfs/fuse_shim.py), stands in
 * for libfuse's fuse_reply_open: a reply whose handle carries CACHE_DIR_BIT
 * goes out with both flags set; every other reply is passed on unchanged.
 * Only directory handles of mounts that nothing changes behind the kernel's
 * back carry the bit (sandboxfs/fuse_ops.py).
 */
#define FUSE_USE_VERSION 34
#include <dlfcn.h>
#include <errno.h>
#include <fuse_lowlevel.h>
#include <stddef.h>

#define CACHE_DIR_BIT (1ULL << 62)

typedef int (*reply_open_fn)(fuse_req_t, const struct fuse_file_info *);

static reply_open_fn real_reply_open(void)
{
	static reply_open_fn real;
	if (real == NULL) {
		void *libfuse = dlopen("libfuse3.so.3", RTLD_NOW | RTLD_NOLOAD);
		if (libfuse != NULL)
			real = (reply_open_fn)dlsym(libfuse, "fuse_reply_open");
	}
	return real;
}

int fuse_reply_open(fuse_req_t req, const struct fuse_file_info *fi)
{
	reply_open_fn real = real_reply_open();
	if (real == NULL)
		return -ENOSYS;
	if (fi != NULL && (fi->fh & CACHE_DIR_BIT)) {
		struct fuse_file_info cached = *fi;
		cached.cache_readdir = 1;
		cached.keep_cache = 1;
		return real(req, &cached);
	}
	return real(req, fi);
}

/* Tells the loader that the library is this one. */
int sandboxfs_fuse_shim_version(void)
{
	return 1;
}
