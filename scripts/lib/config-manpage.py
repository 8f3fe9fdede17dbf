#!/usr/bin/env python3
"""Writes uploader.toml(5) (mdoc) from the annotated example configuration.

usage: config-manpage.py Config/uploader.toml YYYY-MM-DD > uploader.toml.5

The shipped Config/uploader.toml documents every key in the comment above
it; this turns those comments into the manual, so the two never disagree.
A commented-out key (`# key = value`) is an optional one, shown with its
example value.
"""
import re
import sys

KEY = re.compile(r'^(#\s*)?([a-z_]+)\s*=\s*(.+)$')


def roff(text):
    text = text.replace('\\', '\\e')
    return '\\&' + text if text[:1] in ('.', "'") else text


def main():
    path, date = sys.argv[1], sys.argv[2]
    lines = open(path, encoding='utf-8').read().split('\n')
    header, sections, comment = [], [], []
    for line in lines:
        stripped = line.strip()
        section = re.match(r'^\[([a-z_.]+)\]$', stripped)
        if section:
            sections.append((section.group(1), comment, []))
            comment = []
            continue
        key = KEY.match(stripped)
        if key and sections and (key.group(1) is None or comment):
            optional = key.group(1) is not None
            sections[-1][2].append((key.group(2), key.group(3), comment, optional))
            comment = []
            continue
        if stripped.startswith('#'):
            comment.append(stripped.lstrip('#').strip())
        elif not stripped:
            if not sections and comment:
                header.extend(comment + [''])
                comment = []
    out = [
        f'.Dd {date}', '.Dt UPLOADER.TOML 5', '.Os',
        '.Sh NAME', '.Nm uploader.toml', '.Nd configuration of the uploader body-worn camera ingest agent',
        '.Sh SYNOPSIS', '.Pa /etc/uploader/uploader.toml',
        '.Sh DESCRIPTION',
        'The configuration of', '.Xr uploader 1 ,',
        'in TOML. Every command reads it from', '.Fl -config ,',
        'else', '.Ev UPLOADER_CONFIG ,', 'else', '.Pa /etc/uploader/uploader.toml .',
        '.Ic uploader config check',
        'lists every problem with its line and key; a key this version does not know is an error.',
        'Sizes take K, M, G (KiB, MiB, GiB) suffixes;',
        'relative paths are resolved against the folder of the file.',
        '.Pp',
        'The agent runs as the user', '.Sy uploader',
        'in sandboxed units that may write only', '.Pa /var/spool/uploader',
        'and', '.Pa /var/lib/uploader :',
        'a site that moves', '.Cm [paths]',
        'adds its folders to the units with', '.Ic systemctl edit',
        '.Pq Cm ReadWritePaths= .',
    ]
    out.append('.Sh SECTIONS')
    for name, intro, keys in sections:
        out += [f'.Ss [{name}]']
        if intro:
            out += [roff(l) for l in intro] + ['.Pp']
        out.append('.Bl -tag -width Ds')
        for key, value, comment, optional in keys:
            shown = roff(value).replace('"', '\\(dq')
            out.append(f'.It Cm {key} No = Li {shown}' + (' Pq optional' if optional else ''))
            out.extend(roff(l) for l in comment if l)
        out.append('.El')
    out += [
        '.Sh FILES',
        '.Bl -tag -width Ds',
        '.It Pa /etc/uploader/uploader.toml', 'This configuration.',
        '.It Pa /etc/uploader/credentials',
        'The store\'s access key: access_key_id and secret_access_key, owned by uploader, mode 0600.',
        '.It Pa /etc/uploader/cameras.toml',
        'The supported camera models (USB ids, media folders, serial, recording time); its comments describe each key.',
        '.It Pa /var/spool/uploader', 'The spool: verified copies waiting for the store.',
        '.It Pa /var/lib/uploader/ledger.sqlite', 'The transfer ledger and custody log.',
        '.El',
        '.Sh SEE ALSO',
        '.Xr uploader 1 ,', '.Xr systemd.exec 5 ,', '.Xr udev 7',
    ]
    print('\n'.join(out))


if __name__ == '__main__':
    main()
