//go:build linux

package sem_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/procwire/procwire/shm/sem"
)

func Example() {
	name := fmt.Sprintf("example-%d", os.Getpid())
	// At most two processes at a time may run the job. Every process opens
	// the semaphore the same way; only the first Open sets the count.
	s, err := sem.Open(name, 2, &sem.Options{Undo: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer sem.Remove(name)
	defer s.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Acquire(ctx); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("running; units left:", s.Value())
	// With Undo, the unit would come back even if this process died here.
	s.Release()
	fmt.Println("done; units left:", s.Value())
	// Output:
	// running; units left: 1
	// done; units left: 2
}

func ExampleSem_TryAcquire() {
	name := fmt.Sprintf("example-try-%d", os.Getpid())
	s, err := sem.Open(name, 1, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer sem.Remove(name)
	defer s.Close()
	fmt.Println(s.TryAcquire(), s.TryAcquire())
	// Output: true false
}
