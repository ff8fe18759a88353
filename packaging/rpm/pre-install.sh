# cuewarden %pre: the system user must exist before its files are unpacked.
if ! getent passwd cuewarden >/dev/null; then
    useradd --system --user-group --home-dir /var/lib/cuewarden --no-create-home \
        --shell /sbin/nologin --comment "cuewarden subtitle daemon" cuewarden
fi
exit 0
