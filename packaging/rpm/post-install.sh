# cuewarden %post: the state directory; register the unit; enable it on first install
# (systemd presets decide).
install -d -o cuewarden -g cuewarden -m 0750 /var/lib/cuewarden
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
    if [ "$1" -eq 1 ]; then
        systemctl preset cuewarden.service >/dev/null 2>&1 || :
    fi
fi
exit 0
