package webhooks_test

import (
	"testing"

	"github.com/clipper/clipper/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }
