"""moto's S3 server with one fix: the query string is signed as sent.

moto rebuilds the request URL through werkzeug, whose IRI form decodes
characters such as %2F and %2A in the query; moto then computes the SigV4
canonical query from that decoded text (getmoto/moto#5948), so every correctly
signed request whose query holds a '/' (ListObjectsV2 or ListObjectVersions
with a prefix, ListMultipartUploads) is refused with SignatureDoesNotMatch.
AWS computes the canonical query from the percent-encoded form. Here the URL
keeps the query exactly as it came over the wire; signature checking itself
is moto's own, unchanged.
"""
import sys
from urllib.parse import quote

import werkzeug.sansio.request as sansio_request

_werkzeug_current_url = sansio_request.get_current_url


def _current_url_with_raw_query(scheme, host, root_path=None, path=None, query_string=None):
    url = _werkzeug_current_url(scheme, host, root_path, path)
    if query_string:
        raw = query_string.decode("latin-1") if isinstance(query_string, bytes) else query_string
        url += "?" + quote(raw, safe="!$&'()*+,/:;=?@%")
    return url


sansio_request.get_current_url = _current_url_with_raw_query

from moto.server import main  # noqa: E402  (after the fix above)

if __name__ == "__main__":
    sys.exit(main())
