package engine

import "time"

// meterWindow is how far back the rate of progress looks.
const meterWindow = 10 * time.Second

// meter measures the rate of this process's recent batches: rows read per
// second over about the last meterWindow. It starts from the rows the run
// had read when this process began writing, so a resumed run's rate counts
// only its own batches, not those of the process before it.
type meter struct {
	window time.Duration
	marks  []mark // oldest first; the first is the base the rate counts from
}

// mark is the run's rows read at an instant.
type mark struct {
	at      time.Time
	scanned int64
}

func newMeter(at time.Time, scanned int64, window time.Duration) *meter {
	return &meter{window: window, marks: []mark{{at, scanned}}}
}

// add records the run's rows read at an instant, and forgets marks that
// are no longer needed: the base is the newest mark at least window old.
func (m *meter) add(at time.Time, scanned int64) {
	m.marks = append(m.marks, mark{at, scanned})
	from := at.Add(-m.window)
	drop := 0
	for drop+1 < len(m.marks) && !m.marks[drop+1].at.After(from) {
		drop++
	}
	m.marks = m.marks[drop:]
}

// rate is rows read per second between the base and the last mark; 0
// before any time has passed.
func (m *meter) rate() float64 {
	first, last := m.marks[0], m.marks[len(m.marks)-1]
	d := last.at.Sub(first.at).Seconds()
	if d <= 0 {
		return 0
	}
	return float64(last.scanned-first.scanned) / d
}

// eta is how long the rows left from scanned to matched take at the
// current rate; 0 when unknown (no rate yet, or no rows left by the count).
func (m *meter) eta(matched, scanned int64) time.Duration {
	r := m.rate()
	if r <= 0 || matched <= scanned {
		return 0
	}
	return time.Duration(float64(matched-scanned) / r * float64(time.Second))
}
