package storage

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"mime/multipart"
	"net/http"
	"os"
	pathpkg "path"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/clipper/clipper/internal/apperr"
)

// stallTimeout is how long a transfer may make no progress before the
// connection is cut. While bytes flow, deadlines move forward, so large
// files outlive the server's fixed read and write timeouts.
const stallTimeout = 30 * time.Second

// rawBodyKey is the echo context key under which the upload's own body is
// kept (see liftBodyLimit).
const rawBodyKey = "storage.raw_body"

type rawBody struct {
	body   io.ReadCloser
	length int64
}

// UploadResult is the answer to a successful upload, Supabase Storage's
// own: {"Key": "bucket/path"} (supabase/storage
// src/http/routes/object/uploadSignedObject.ts), which supabase-js
// uploadToSignedUrl returns as fullPath.
type UploadResult struct {
	Key string `json:"Key"`
}

// maxContentTypeBytes bounds a stored content type, and a form field of a
// multipart upload.
const maxContentTypeBytes = 1024

// defaultContentType is what Supabase Storage stores for an upload that
// names no type (src/storage/uploader.ts fileUploadFromRequest).
const defaultContentType = "application/octet-stream"

// RegisterRoutes serves the local backend's signed URLs on e:
//
//	GET|HEAD /storage/v1/object/sign/{bucket}/{path}?token=...[&download=name]
//	PUT      /storage/v1/object/upload/sign/{bucket}/{path}?token=...
//
// Both answer CORS preflights from any origin: the token is the only
// credential, as with Supabase Storage. The headers supabase-js sends
// along (its apikey, Authorization, x-client-info, x-upsert,
// cache-control, x-metadata) are allowed and ignored.
func (l *Local) RegisterRoutes(e *echo.Echo) {
	e.Pre(liftBodyLimit)
	cors := middleware.CORSWithConfig(middleware.CORSConfig{
		AllowOrigins: []string{"*"},
		AllowMethods: []string{http.MethodGet, http.MethodHead, http.MethodPut},
		AllowHeaders: []string{echo.HeaderContentType, "Range", "If-None-Match", "If-Modified-Since", "If-Range",
			echo.HeaderAuthorization, "apikey", "x-client-info", "x-upsert", "cache-control", "x-metadata"},
		ExposeHeaders: []string{echo.HeaderContentLength, "Content-Range", "Accept-Ranges", "Last-Modified", "Content-Disposition"},
		MaxAge:        3600,
	})
	preflight := func(c echo.Context) error { return c.NoContent(http.StatusNoContent) }
	e.GET(downloadPrefix+"*", l.download, cors)
	e.HEAD(downloadPrefix+"*", l.download, cors)
	e.OPTIONS(downloadPrefix+"*", preflight, cors)
	e.PUT(uploadPrefix+"*", l.upload, cors)
	e.OPTIONS(uploadPrefix+"*", preflight, cors)
}

// liftBodyLimit keeps an upload's body out of the HTTP core's request
// body cap (1 MiB by default, for JSON): the raw body is kept for the
// upload handler, which enforces MaxUploadBytes itself, and the declared
// length is hidden from the core's early check. It runs before routing,
// so it matches the upload prefix itself.
func liftBodyLimit(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		if r.Method == http.MethodPut && strings.HasPrefix(r.URL.Path, uploadPrefix) {
			c.Set(rawBodyKey, rawBody{body: r.Body, length: r.ContentLength})
			r.ContentLength = -1
		}
		return next(c)
	}
}

// requestBody returns the upload's body and declared length (-1 if none).
func requestBody(c echo.Context) (io.Reader, int64) {
	if rb, ok := c.Get(rawBodyKey).(rawBody); ok {
		return rb.body, rb.length
	}
	return c.Request().Body, c.Request().ContentLength
}

// objectFromURL splits the request path after prefix into bucket and
// object path, both checked.
func objectFromURL(r *http.Request, prefix string) (string, string, error) {
	rest := strings.TrimPrefix(r.URL.Path, prefix)
	bucket, path, ok := strings.Cut(rest, "/")
	if !ok {
		return "", "", apperr.New(apperr.InvalidInput, "signed URL names no object")
	}
	if err := checkObject(bucket, path); err != nil {
		return "", "", err
	}
	return bucket, path, nil
}

func (l *Local) download(c echo.Context) error {
	r := c.Request()
	bucket, path, err := objectFromURL(r, downloadPrefix)
	if err != nil {
		return err
	}
	claims, err := verifyToken(l.secret, c.QueryParam("token"), objectKey(bucket, path), purposeDownload, l.now)
	if err != nil {
		return err
	}
	root, err := os.OpenRoot(l.dir)
	if err != nil {
		return apperr.Wrap(err, apperr.Internal, "cannot open the storage folder")
	}
	defer root.Close()
	f, err := root.Open(filepath.FromSlash(objectKey(bucket, path)))
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return apperr.New(apperr.NotFound, "object not found")
	}
	if err != nil {
		return apperr.Wrap(err, apperr.Internal, "cannot read the object")
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return apperr.Wrap(err, apperr.Internal, "cannot read the object")
	}
	if info.IsDir() {
		return apperr.New(apperr.NotFound, "object not found")
	}

	h := c.Response().Header()
	// Objects are user content served from the API's origin: never let a
	// browser run them as a page.
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "default-src 'none'; sandbox")
	// Caches may keep the response only while the URL is valid.
	left := max(int64(claims.ExpiresAt.Sub(l.now())/time.Second), 0)
	h.Set(echo.HeaderCacheControl, fmt.Sprintf("private, max-age=%d", left))
	// The type the upload stored, as Storage serves it (text/html as
	// text/plain: src/storage/renderer/renderer.ts normalizeContentType);
	// objects stored without one get a type guessed by ServeContent.
	if ct := loadContentType(f); ct != "" {
		if strings.Contains(ct, "text/html") {
			ct = "text/plain"
		}
		h.Set(echo.HeaderContentType, ct)
	}
	if download, ok := r.URL.Query()["download"]; ok {
		h.Set(echo.HeaderContentDisposition, contentDisposition(download[0]))
	}

	p := newProgress(c.Response(), false, true)
	http.ServeContent(c.Response(), r, pathpkg.Base(path), info.ModTime(), &progressFile{f: f, p: p})
	return nil
}

func (l *Local) upload(c echo.Context) error {
	bucket, path, err := objectFromURL(c.Request(), uploadPrefix)
	if err != nil {
		return err
	}
	key := objectKey(bucket, path)
	if _, err := verifyToken(l.secret, c.QueryParam("token"), key, purposeUpload, l.now); err != nil {
		return err
	}
	raw, length := requestBody(c)
	multipartBody := isMultipart(c.Request())
	// A multipart body is larger than its file: only the file counts.
	if length > l.maxUpload && !multipartBody {
		return l.tooLarge()
	}

	root, err := os.OpenRoot(l.dir)
	if err != nil {
		return apperr.Wrap(err, apperr.Internal, "cannot open the storage folder")
	}
	defer root.Close()
	if parent := parentOf(key); parent != "" {
		if err := root.MkdirAll(filepath.FromSlash(parent), 0o750); err != nil {
			if errors.Is(err, syscall.ENOTDIR) || errors.Is(err, fs.ErrExist) {
				return apperr.New(apperr.Conflict, "an object exists where %s needs a folder", key)
			}
			return apperr.Wrap(err, apperr.Internal, "cannot create the object's folder")
		}
	}

	// Write to a temporary file, then link it into place: readers never
	// see a partial object, and a concurrent upload of the same path
	// cannot replace the first one.
	tmp := filepath.Join(tmpDir, randomName())
	f, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return apperr.Wrap(err, apperr.Internal, "cannot create a temporary file")
	}
	defer func() { _ = root.Remove(tmp) }()
	p := newProgress(c.Response(), true, true)
	body, contentType, err := uploadBody(c.Request(), &progressReader{r: raw, p: p}, multipartBody)
	if err != nil {
		_ = f.Close()
		return err
	}
	if len(contentType) > maxContentTypeBytes || strings.ContainsFunc(contentType, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		_ = f.Close()
		return apperr.New(apperr.InvalidInput, "upload content type is longer than %d bytes or holds control characters", maxContentTypeBytes)
	}
	saveContentType(f, contentType)
	n, err := io.Copy(f, io.LimitReader(body, l.maxUpload+1))
	if err == nil && n > l.maxUpload {
		err = l.tooLarge()
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		if apperr.CodeOf(err) == apperr.PayloadTooLarge {
			return err
		}
		if errors.Is(err, io.ErrUnexpectedEOF) || isReadError(err) {
			return apperr.Wrap(err, apperr.InvalidInput, "upload body ended early")
		}
		return apperr.Wrap(err, apperr.Internal, "cannot write the object")
	}
	if err := root.Link(tmp, filepath.FromSlash(key)); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return apperr.New(apperr.Conflict, "object %s already exists", key)
		}
		return apperr.Wrap(err, apperr.Internal, "cannot store the object")
	}
	syncDir(root, parentOf(key))
	return c.JSON(http.StatusOK, UploadResult{Key: key})
}

// isMultipart reports whether an upload is multipart form data, as
// supabase-js uploadToSignedUrl sends a Blob or File.
func isMultipart(r *http.Request) bool {
	mediaType, _, err := mime.ParseMediaType(r.Header.Get(echo.HeaderContentType))
	return err == nil && mediaType == "multipart/form-data"
}

// uploadBody returns the bytes to store and their content type, as
// Supabase Storage reads them (src/storage/uploader.ts
// fileUploadFromRequest): a raw body with the request's Content-Type
// (application/octet-stream if none); or, for multipart form data, the
// first file part, typed by a contentType field sent before it, else by
// the part's own Content-Type. supabase-js uploadToSignedUrl sends a Blob
// as the form field "" after a cacheControl field (and a metadata field
// when asked), which are not kept here (supabase/supabase-js
// packages/core/storage-js/src/packages/StorageFileApi.ts).
func uploadBody(r *http.Request, body io.Reader, multipartBody bool) (io.Reader, string, error) {
	if !multipartBody {
		ct := r.Header.Get(echo.HeaderContentType)
		if ct == "" {
			ct = defaultContentType
		}
		return body, ct, nil
	}
	_, params, _ := mime.ParseMediaType(r.Header.Get(echo.HeaderContentType))
	if params["boundary"] == "" {
		return nil, "", apperr.New(apperr.InvalidInput, "multipart upload has no boundary")
	}
	mr := multipart.NewReader(body, params["boundary"])
	fieldType := ""
	for {
		part, err := mr.NextPart()
		if err != nil {
			if isReadError(err) {
				return nil, "", apperr.Wrap(err, apperr.InvalidInput, "upload body ended early")
			}
			if errors.Is(err, io.EOF) {
				return nil, "", apperr.New(apperr.InvalidInput, "multipart upload has no file")
			}
			return nil, "", apperr.Wrap(err, apperr.InvalidInput, "upload is not valid multipart form data")
		}
		if part.FileName() == "" {
			// A form field: only contentType matters here.
			v, err := io.ReadAll(io.LimitReader(part, maxContentTypeBytes+1))
			if err != nil {
				return nil, "", apperr.Wrap(err, apperr.InvalidInput, "upload is not valid multipart form data")
			}
			if part.FormName() == "contentType" && len(v) <= maxContentTypeBytes {
				fieldType = string(v)
			}
			continue
		}
		ct := fieldType
		if ct == "" {
			ct = part.Header.Get(echo.HeaderContentType)
		}
		if ct == "" {
			ct = defaultContentType
		}
		return part, ct, nil
	}
}

func (l *Local) tooLarge() error {
	return apperr.New(apperr.PayloadTooLarge, "upload is larger than the limit of %d bytes", l.maxUpload)
}

// isReadError reports whether err came from reading the request body (the
// client went away or sent less than it declared), not from the disk.
func isReadError(err error) bool {
	var re *bodyReadError
	return errors.As(err, &re)
}

// syncDir makes a new directory entry durable. Best effort: the object is
// already complete and linked.
func syncDir(root *os.Root, dir string) {
	if dir == "" {
		dir = "."
	}
	if d, err := root.Open(filepath.FromSlash(dir)); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
}

// progress moves the connection's deadlines forward, at most once a
// second, while a transfer makes progress.
type progress struct {
	rc          *http.ResponseController
	read, write bool
	next        time.Time
}

func newProgress(w http.ResponseWriter, read, write bool) *progress {
	p := &progress{rc: http.NewResponseController(w), read: read, write: write}
	p.moved()
	return p
}

func (p *progress) moved() {
	now := time.Now()
	if now.Before(p.next) {
		return
	}
	p.next = now.Add(time.Second)
	deadline := now.Add(stallTimeout)
	// Errors mean the writer cannot set deadlines (tests' recorders):
	// nothing to extend then.
	if p.read {
		_ = p.rc.SetReadDeadline(deadline)
	}
	if p.write {
		_ = p.rc.SetWriteDeadline(deadline)
	}
}

// bodyReadError marks a failure to read the request body.
type bodyReadError struct{ err error }

func (e *bodyReadError) Error() string { return "read request body: " + e.err.Error() }
func (e *bodyReadError) Unwrap() error { return e.err }

type progressReader struct {
	r io.Reader
	p *progress
}

func (pr *progressReader) Read(b []byte) (int, error) {
	n, err := pr.r.Read(b)
	if n > 0 {
		pr.p.moved()
	}
	if err != nil && err != io.EOF {
		err = &bodyReadError{err: err}
	}
	return n, err
}

// progressFile is the object as http.ServeContent reads it.
type progressFile struct {
	f *os.File
	p *progress
}

func (pf *progressFile) Read(b []byte) (int, error) {
	n, err := pf.f.Read(b)
	if n > 0 {
		pf.p.moved()
	}
	return n, err
}

func (pf *progressFile) Seek(offset int64, whence int) (int64, error) {
	return pf.f.Seek(offset, whence)
}
