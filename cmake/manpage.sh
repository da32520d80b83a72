#!/bin/sh
# shoal(8) in go-md2man's Markdown, made of the README's sections on the command line, signals,
# deploying, configuration, logs, limits and systemd, and conf/shoal.toml (every key) as the
# reference: the man page says what the README says, and cannot drift from it.
#   cmake/manpage.sh README.md conf/shoal.toml VERSION | go-md2man > shoal.8
set -eu
readme=$1 keys=$2 version=$3

# section TITLE: the README's "## TITLE" up to the next "## ", as a man section (# TITLE, in
# capitals), its "###" subsections one level up, links reduced to their text (a man page has no
# anchors), and the README's relative paths made the installed ones.
section() {
  awk -v want="## $1" '
    $0 == want { on = 1; print "# " toupper(substr($0, 4)); next }
    on && /^## / { exit }
    on && /^```/ { fence = !fence }
    on && !fence && /^### / { sub(/^###/, "##") }
    on { print }' "$readme" | tables |
  sed -e 's/\[\([^]]*\)\]([^)]*)/\1/g' \
      -e 's#`conf/shoal.toml`#`/usr/share/doc/shoal/shoal.toml`#g' \
      -e 's#conf/server.production.toml#/usr/share/doc/shoal/server.production.toml#g' \
      -e 's#conf/shoal.logrotate#/etc/logrotate.d/shoal#g' -e 's#conf/shoal\.\(service\|socket\)#shoal.\1#g' \
      -e 's#`tests/[a-z_]*\.cpp`#the test suite#g'
  grep -q "^## $1\$" "$readme" || { echo "manpage.sh: no section '## $1' in $readme" >&2; exit 1; }
}

# tables: a Markdown table becomes a list, one entry per row (man renders wide tables badly): the
# row's first non-empty cell is the entry, the others follow; with more than two columns each
# is labelled with its column's header.
tables() {
  awk '
    function cells(line, out,    n, i) {
      sub(/^[ \t]*\|/, "", line); sub(/\|[ \t]*$/, "", line)
      n = split(line, out, "|")
      for (i = 1; i <= n; i++) { gsub(/^[ \t]+|[ \t]+$/, "", out[i]) }
      return n
    }
    /^```/ { fence = !fence }
    fence || !/^\|/ { if (row) print ""; row = 0; head = 0; print; next }
    !head { columns = cells($0, header); head = 1; next }
    /^\|[ \t:|-]+$/ { next }
    {
      cells($0, cell)
      first = 1; while (first < columns && cell[first] == "") first++
      text = ""
      for (i = first + 1; i <= columns; i++) {
        if (cell[i] == "" || cell[i] == "—") continue
        part = columns > 2 ? header[i] ": " cell[i] : cell[i]
        text = text == "" ? part : text "; " part
      }
      printf "%s%s\n: %s\n", row ? "\n" : "", cell[first], text == "" ? "—" : text
      row = 1
    }'
}

printf '%% shoal 8 "" "shoal %s" "System Manager'"'"'s Manual"\n\n' "$version"
cat <<'HEAD'
# NAME
shoal - pre-fork HTTP/1.1 server: a master that supervises workers, reloads and upgrades without dropping a request

# SYNOPSIS
**shoal** [**-c** *FILE*] [**-t** | **-T**]

**shoal** **reload** | **stop** [**--now**] | **upgrade** | **status** [**--json**] | **reopen** [**--timeout** *DURATION*] [**-c** *FILE*]

# DESCRIPTION
HEAD
# The README's introduction: its paragraphs between the set-up block and the first section.
awk '/^shoal is a pre-fork/ { on = 1 } on && /^## / { exit } on { print }' "$readme"
echo
for title in "Command line" "Signals and commands" "Deploying a new version" "Configuration" \
             "Logs" "Limits and timeouts" "systemd"; do
  section "$title"
  echo
done
echo '# KEYS'
echo 'Every key of the config file, with its default (the installed `/usr/share/doc/shoal/shoal.toml`):'
echo
echo '```'
cat "$keys"
echo '```'
cat <<'TAIL'

# FILES
*/etc/shoal/server.toml*
: the config the systemd unit runs (`shoal.service`)

*/run/shoal/shoal.pid*, */run/shoal/shoal.ctl*
: the master's pid file and control socket, as that config sets them

*/var/log/shoal/shoal.log*, */var/log/shoal/access.log*
: its log and access log, rotated by */etc/logrotate.d/shoal*

*/usr/share/doc/shoal/README.md*
: everything above, and how shoal works, its security model and its tests

# SEE ALSO
**systemctl**(1), **systemd.service**(5), **logrotate**(8), **nginx**(8), **haproxy**(1)
TAIL
