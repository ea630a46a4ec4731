# sandboxfs: the two quick-start commands are `make demo` and `make test`.
# Both call `make setup`, which installs what is missing and is quick the second time.

VENV      := .venv
PY        := $(VENV)/bin/python
DEB_PKGS  := fuse3 libfuse3-dev pkg-config gcc diod fuse-overlayfs busybox-static attr git
STAMP     := $(VENV)/.setup-stamp
FUSE_SHIM := sandboxfs/native/libsandboxfs_fuse_shim.so

.PHONY: setup demo test lint typecheck bench bench-quick bench-idmap clean

# mount(8) runs fuse helpers with a fixed PATH, so `mount -t fuse.sandboxfs` and
# mount.fuse3 find the command only in a system directory: link this checkout's.
setup: $(STAMP) $(FUSE_SHIM)
	@if [ "$$(id -u)" -eq 0 ]; then ln -sfn "$(abspath $(VENV))/bin/sandboxfs" /usr/local/bin/sandboxfs; fi

$(STAMP): pyproject.toml scripts/setup-debian.sh
	bash scripts/setup-debian.sh $(DEB_PKGS)
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

# The library that lets the kernel keep directory listings (sandboxfs/fuse_shim.py).
$(FUSE_SHIM): sandboxfs/native/fuse_shim.c $(STAMP)
	gcc -O2 -shared -fPIC -Wall -Werror $$(pkg-config --cflags fuse3) -o $@ $< -ldl -lfuse3

demo: setup
	bash examples/demo.sh

lint: setup
	$(VENV)/bin/ruff check gofer sandboxfs tests bench
	$(VENV)/bin/mypy gofer sandboxfs bench

test: setup lint
	$(VENV)/bin/pytest -q

# The benchmark suite (docs/bench.md): root, a few minutes quick, much longer in full.
# BENCH_ARGS passes options, e.g. `make bench BENCH_ARGS="--targets native,sandboxfs"`.
BENCH_STAMP := $(VENV)/.bench-stamp

$(BENCH_STAMP): pyproject.toml $(STAMP)
	$(PY) -m pip install -q -e '.[bench]'
	touch $(BENCH_STAMP)

bench: setup $(BENCH_STAMP)
	$(PY) -m bench $(BENCH_ARGS)

bench-quick: setup $(BENCH_STAMP)
	$(PY) -m bench --quick $(BENCH_ARGS)

# An id-mapped mount against chown -R of a copy, on the suite's cached trees.
bench-idmap: setup $(BENCH_STAMP)
	$(PY) -m bench.idmap $(BENCH_ARGS)

clean:
	rm -rf $(VENV) examples/bundle/rootfs $(FUSE_SHIM)
