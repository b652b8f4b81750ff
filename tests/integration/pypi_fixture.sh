# shellcheck shell=bash
# pypi_fixture.sh - a local Python package index for the pip tests and benchmark (source after lib.sh).
#
#   make_pypi_index DIR FILES_PORT [--add-version P V ...]  builds DIR/root (see pypi_make_index.py)
#   start_pypi_upstream DIR INDEX_PORT FILES_PORT [FORMAT]  nginx: the index on INDEX_PORT (/simple/, /packages/)
#                                                           and a second "files host" on FILES_PORT (/packages/)
#
# With FORMAT "both" (the default) the index answers PEP 691 JSON when the Accept header asks for
# application/vnd.pypi.simple.v1+json, and PEP 503 HTML otherwise (an nginx map on Accept, as TESTING.md
# describes); "html" serves only the HTML pages and "json" only the JSON ones, whatever the client asks (an index
# that knows one format: the other must be made by Larder). With Vary: Accept, ETag and Last-Modified (nginx's
# own, so conditional revalidation is the real thing).

make_pypi_index() {
    local dir=$1 files_port=$2
    shift 2
    mkdir -p "$dir/root"
    chmod 755 "$dir" "$dir/root"
    "$PY" "$LIB_DIR/pypi_make_index.py" "$dir/root" --files-url "http://127.0.0.1:$files_port/" "$@" ||
        fail "pypi_make_index.py failed"
}

start_pypi_upstream() {
    local dir=$1 iport=$2 fport=$3 format=${4:-both}
    local json_fmt=json dflt=html
    case "$format" in
    both) ;;
    html) json_fmt=html ;;
    json) dflt=json ;;
    *) fail "start_pypi_upstream: unknown format $format" ;;
    esac
    mkdir -p "$dir/logs" "$dir/tmp"
    {
        nginx_common_main "$dir"
        cat <<EOF
    sendfile on;
    map \$http_accept \$pypi_fmt {
        default $dflt;
        "~*application/vnd\\.pypi\\.simple\\.v1\\+json" $json_fmt;
    }
    server {
        listen 127.0.0.1:$iport;
        server_name localhost;
        root $dir/root;
        location /simple/ {
            types { text/html html; application/vnd.pypi.simple.v1+json json; }
            add_header Vary Accept;
            try_files \$uri/index.\$pypi_fmt \$uri =404;
        }
        location /packages/ { }
    }
    server {
        listen 127.0.0.1:$fport;
        server_name localhost;
        root $dir/root;
        access_log $dir/logs/files-access.log larder_test;
        location /packages/ { }
        location / { return 404; }
    }
}
EOF
    } >"$dir/nginx.conf"
    NGINX_WAIT_PORTS="$iport $fport" run_nginx "$dir"
}
