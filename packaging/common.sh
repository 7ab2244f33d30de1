# Shared by packaging/build-deb and packaging/build-rpm; sourced, not run.

# Installs the named Debian packages that are not installed yet.
install_missing() {
    local missing=() package
    for package in "$@"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    local sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    echo "Installing build dependencies: ${missing[*]}" >&2
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# The version, from its one place: meson.build.
project_version() {
    sed -n "s/^ *version *: *'\([^']*\)'.*/\1/p" "$root/meson.build" | head -n 1
}

# Copies the source tree (the files git tracks, as they are in the working
# tree; everything but build directories outside git) to $1.
copy_tree() {
    local dest=$1
    mkdir -p "$dest"
    if git -C "$root" rev-parse --git-dir >/dev/null 2>&1; then
        (cd "$root" && git ls-files -z --cached | xargs -0 -I{} find {} -maxdepth 0 -print0 2>/dev/null |
            tar --null -T - -cf -) | tar -C "$dest" -xf -
    else
        (cd "$root" && tar --exclude='./build*' --exclude='./packaging/out' -cf - .) | tar -C "$dest" -xf -
    fi
}
