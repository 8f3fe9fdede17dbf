import Foundation
import Platform
import Testing
import TestBasics

/// Invariant 7 in the tests' own process: the check is on in the tasks a test
/// runs the daemon in (`withBlockingCallsChecked`), and a blocking call there stops the process.
@Suite struct BlockingCallCheckTests {
    @Test func theCheckIsOnInsideTheScopeAndInTheTasksItStarts() async {
        await withBlockingCallsChecked {
            #expect(BlockingCallCheck.isEnabled)
            await withTaskGroup(of: Bool.self) { tasks in
                tasks.addTask { BlockingCallCheck.isEnabled }
                for await enabled in tasks { #expect(enabled, "a child task of the scope runs unchecked") }
            }
            #expect(await Task { BlockingCallCheck.isEnabled }.value, "a task started in the scope runs unchecked")
        }
    }

    @Test func aBlockingCallInsideACheckedTaskStopsTheProcess() async {
        await #expect(processExitsWith: .failure) {
            await withBlockingCallsChecked {
                BlockingCallCheck.assertNotInTask("a test's deliberate blocking call")
            }
        }
    }
}
